"""Shards vouch for themselves: each shard's own metadata (``mirage.json``, written with its
arrays) records the generator fingerprint, the speakers that generator was trained on
(and excluded), and the shard's content hash. Readers check every manifest row against
the shard it points at, so an edited manifest cannot pass off one fold's shard as another's
(the leakage guard would otherwise trust the manifest's ``trained_speakers`` alone), and
refuse a shard set that did not reach its requested size unless asked to accept it.

Shards written before ``trained_speakers`` was recorded under that name carry it as
``speakers`` (every shard mirage has written records it); a shard that records no
speakers at all is refused — the leakage check cannot vouch for it — with a message to
regenerate. A missing generator fingerprint or content hash (never written by mirage) is
a warning only: neither decides which fold may use the shard.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from mirage.featstore.errors import ConfigError, LeakageError, StoreCorruptError
from mirage.featstore.store.location import Location, is_remote

log = logging.getLogger(__name__)

#: Fields a shard records about itself (beyond the feature store's own metadata).
RECORD_VERSION = 1
_READ_THREADS = 8


def self_record(bundle_config: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """The metadata fields a shard records about where it came from (the writer adds the content hash)."""
    return {"generator": fingerprint, "trained_speakers": list(bundle_config["speakers"]),
            "excluded_speakers": list(bundle_config.get("excluded_speakers") or []),
            "source_content_hash": bundle_config["source"]["content_hash"], "self_record": RECORD_VERSION}


def speaker_list(value: Any) -> list[str] | None:
    """A manifest/record speaker field as a list of ids: a JSON list, a comma-separated string or a
    sequence; None when the field is missing or NaN (the one parser of recorded speakers)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [v for v in value.split(",") if v]
    return [str(v) for v in list(value)]


def _speakers(value) -> list[str] | None:
    found = speaker_list(value)
    return None if found is None else sorted(found)


def _names(speakers: list[str], limit: int = 8) -> str:
    shown = ", ".join(speakers[:limit])
    return shown + (f" and {len(speakers) - limit} more" if len(speakers) > limit else "")


def read_record(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A shard's own metadata (one small read); :class:`StoreCorruptError` when it is missing or damaged."""
    loc = Location(url, storage_options)
    try:
        if not is_remote(url) and loc.fs.isfile(loc.path):  # an HDF5 shard
            from mirage.featstore.store.hdf5_store import Hdf5Backend

            backend = Hdf5Backend(loc.url, storage_options)
            try:
                return backend.attrs()
            finally:
                backend.close()
        return json.loads(loc.read_bytes("mirage.json"))
    except FileNotFoundError:
        raise StoreCorruptError(f"synthetic shard {url}: listed in its manifest, found no shard there; "
                                "rerun the same `augment generate` command to rewrite it") from None
    except ValueError:
        raise StoreCorruptError(f"synthetic shard {url}: its metadata (mirage.json) is unreadable; "
                                "rerun `augment generate` with --overwrite") from None


def check_row(row: dict[str, Any], record: dict[str, Any], run: dict[str, Any]) -> None:
    """Raise when the manifest row and the shard it points at disagree on where the shard came from."""
    url = row.get("path_abs") or row.get("path")
    fix = "the manifest row does not describe this shard (edited, or pointed at another set's shard); " \
          "regenerate the set with `augment generate --overwrite`"
    if record.get("kind") != "synthetic":
        raise ConfigError(f"synthetic shard {url}: expected a shard written by `augment generate`, got a store of kind "
                          f"{record.get('kind') or 'features'}; {fix}")
    if not record.get("complete"):
        raise StoreCorruptError(f"synthetic shard {url}: expected a finished shard, got an unfinished write; {fix}")
    recorded = _speakers(record.get("trained_speakers", record.get("speakers")))
    if recorded is None:
        raise LeakageError(f"synthetic shard {url}: expected it to record the speakers its generator was trained on, "
                           "got none, so the leakage check cannot vouch for it; regenerate the set with `augment generate`")
    listed = _speakers(row.get("trained_speakers"))
    if listed is not None and listed != recorded:
        extra = sorted(set(recorded) - set(listed))
        raise LeakageError(f"synthetic shard {url}: its manifest row says its generator was trained on speakers "
                           f"{_names(listed)}, the shard records {_names(recorded)}"
                           + (f" (its generator also saw {', '.join(extra[:8])})" if extra else "") + f"; {fix}")
    for field, key, what in (("generator", "generator", "generator fingerprint"),
                             ("shard_content_hash", "content_hash", "content hash"),
                             ("source_content_hash", "source_content_hash", "source store hash")):
        want, got = row.get(field), record.get(key)
        if want is None or (isinstance(want, float) and want != want):
            continue
        if got is None:
            log.warning("synthetic shard %s records no %s (written by an older version); not checked", url, what)
            continue
        if str(want) != str(got):
            raise LeakageError(f"synthetic shard {url}: expected {what} {str(want)[:16]} (its manifest row), "
                               f"the shard records {str(got)[:16]}; {fix}")
    gen = run.get("generator")
    if gen and row.get("generator") and str(row["generator"]) != str(gen):
        raise LeakageError(f"synthetic shard {url}: its manifest row names generator {str(row['generator'])[:16]}, the "
                           f"set was generated by {str(gen)[:16]}; {fix}")


def check_rows(df: pd.DataFrame, run: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """Check every row of a manifest against its shard (records read in parallel on remote stores)."""
    rows = df.to_dict(orient="records")
    if not rows:
        return
    urls = [str(r["path_abs"]) for r in rows]
    if is_remote(urls[0]) and len(urls) > 1:
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            records = list(pool.map(lambda u: read_record(u, storage_options), urls))
    else:
        records = [read_record(u, storage_options) for u in urls]
    for row, record in zip(rows, records):
        check_row(row, record, run)


def check_complete(path: str, df: pd.DataFrame, run: dict[str, Any], *, allow_incomplete: bool) -> bool:
    """Whether the set holds the items its run asked for; refuses an incomplete set unless allowed."""
    requested = run.get("n_requested")
    n_items = int(df["n_items"].sum()) if "n_items" in df.columns and len(df) else 0
    if requested is None or n_items >= int(requested):
        return True
    msg = (f"synthetic shard set {path}: holds {n_items} of the {int(requested)} items its `augment generate` run "
           f"asked for ({len(df)} shards; complete: false)")
    if not allow_incomplete:
        raise ConfigError(msg + "; rerun the same `augment generate` command to finish it (or lower --min-mi), "
                          "or pass --allow-incomplete to train on what is there")
    log.warning("%s; used as is (--allow-incomplete)", msg)
    return False
