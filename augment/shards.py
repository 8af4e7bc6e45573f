"""The shard manifest (``manifest.parquet``): one row per committed shard.

The manifest is the commit record: a shard folder it does not list is unfinished and
ignored (and replaced on the next run). Paths in it are relative to the manifest, so a
shard set can be moved or uploaded as a whole. Run-level settings live in the Parquet
schema metadata under ``mirage``.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pandas as pd

from mirage.featstore.errors import ConfigError, StoreCorruptError, StoreNotFoundError
from mirage.featstore.store.location import Location, join

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
SHARD_PATTERN = "shard-{slot:05d}.zarr"
TMP_PREFIX = ".tmp-"
#: Column order of a manifest; JSON columns hold dicts/lists as text so any Parquet reader copes.
COLUMNS = (
    "path", "n_items", "label_counts", "mi_y_nats", "mi_y_ceiling_nats", "mi_t_nats", "mi_t_ceiling_nats",
    "mi_score", "generator", "seed", "slot", "attempt", "source_content_hash", "trained_speakers", "mode", "format",
    "arrays", "shard_content_hash",
)
JSON_COLUMNS = ("label_counts", "trained_speakers", "arrays")


def manifest_location(path: str, storage_options: dict | None = None) -> tuple[Location, str]:
    """(folder, manifest file name) for ``synth/`` or ``synth/manifest.parquet``."""
    text = str(path).rstrip("/")
    if text.endswith(".parquet"):
        folder, _, name = text.rpartition("/")
        return Location(folder or ".", storage_options), name
    return Location(text, storage_options), MANIFEST_NAME


def _schema():
    import pyarrow as pa

    types = {"path": pa.string(), "n_items": pa.int64(), "generator": pa.string(), "seed": pa.int64(),
             "slot": pa.int64(), "attempt": pa.int64(), "source_content_hash": pa.string(), "mode": pa.string(),
             "format": pa.string(), "shard_content_hash": pa.string(), **{c: pa.string() for c in JSON_COLUMNS}}
    return pa.schema([(c, types.get(c, pa.float64())) for c in COLUMNS])


def manifest_bytes(rows: list[dict[str, Any]], run: dict[str, Any]) -> bytes:
    """Parquet bytes of the rows (sorted by slot) with ``run`` as schema metadata; deterministic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: int(r["slot"]))
    cols = {c: [r[c] for r in rows] for c in COLUMNS}
    for c in JSON_COLUMNS:
        cols[c] = [json.dumps(v, sort_keys=True) for v in cols[c]]
    from mirage.featstore.kinds import MANIFEST_KIND_KEY, SHARD_SET

    run_json = json.dumps(run, sort_keys=True).encode()
    table = pa.table(cols, schema=_schema())
    schema = _schema().with_metadata({b"mirage": run_json, MANIFEST_KIND_KEY: SHARD_SET.encode(),
                                      DIGEST_KEY: _digest(table, run_json).encode()})
    table = table.replace_schema_metadata(schema.metadata)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


#: Schema-metadata key of the manifest's own checksum: SHA-256 over its rows (as decoded) and
#: run settings. Parquet pages carry no checksum by default, and a flipped byte in a value
#: would otherwise be read as data. Manifests written before it existed are read unchecked.
DIGEST_KEY = b"mirage_sha256"


def _digest(table, run_json: bytes) -> str:
    """SHA-256 over the decoded rows (exact: floats by repr, nulls as null) and the run settings."""
    import hashlib

    rows = json.dumps({"columns": table.column_names, "rows": table.to_pylist()}, sort_keys=True, default=str)
    return hashlib.sha256(rows.encode() + b"\0" + run_json).hexdigest()


def write_manifest(loc: Location, rows: list[dict[str, Any]], run: dict[str, Any], name: str = MANIFEST_NAME) -> None:
    """Atomic (temp file + rename)."""
    loc.write_bytes(name, manifest_bytes(rows, run))


def _load(loc: Location, name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pyarrow.parquet as pq

    if not loc.exists(name):
        raise StoreNotFoundError(f"{loc.url}: expected a shard manifest ({name}), found none; "
                                 "run `augment generate --out` first")
    try:
        table = pq.read_table(io.BytesIO(loc.read_bytes(name)))
    except Exception as e:  # pyarrow raises several types for a damaged file
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise StoreCorruptError(f"{loc.url}/{name}: expected a Parquet manifest, got unreadable content ({detail}); "
                                "rerun the same `augment generate` command to rewrite it") from None
    meta = table.schema.metadata or {}
    try:
        run = json.loads(meta.get(b"mirage", b"{}"))
    except ValueError:
        run = None
    recorded = meta.get(DIGEST_KEY)
    if run is None or (recorded is not None and recorded.decode(errors="replace") != _digest(table, meta.get(b"mirage", b"{}"))):
        raise StoreCorruptError(f"{loc.url}/{name}: expected a manifest matching its recorded checksum, got altered or "
                                "damaged content; rerun the same `augment generate` command to rewrite it")
    return table.to_pandas(), run


def read_run(path: str, storage_options: dict | None = None) -> dict[str, Any]:
    """The run-level settings recorded with a manifest (generator, seed, n, min_mi, ...)."""
    loc, name = manifest_location(path, storage_options)
    return _load(loc, name)[1]


def raw_rows(loc: Location, name: str = MANIFEST_NAME) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """Committed rows (JSON columns decoded) and run settings, or None when there is no manifest."""
    if not loc.exists(name):
        return None
    df, run = _load(loc, name)
    return [_decode(r) for r in df.to_dict(orient="records")], run


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for col in JSON_COLUMNS:
        if isinstance(out.get(col), str):
            out[col] = json.loads(out[col])
    return out


def read_manifest(path, *, min_mi: float | None = None, storage_options: dict | None = None) -> pd.DataFrame:
    """The committed shards (see :func:`read_manifest_run`, which also returns the run settings)."""
    return read_manifest_run(path, min_mi=min_mi, storage_options=storage_options)[0]


def read_manifest_run(path, *, min_mi: float | None = None,
                      storage_options: dict | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The committed shards of a synthetic set, one row each, with ``path_abs`` resolved.

    ``path`` is the folder or its manifest.parquet. ``min_mi`` drops shards whose
    normalised ``mi_score`` is below it. ``label_counts`` is a dict, ``trained_speakers`` and
    ``arrays`` are lists.
    """
    from mirage.augment.counts import parse_unit_float

    if min_mi is not None:
        min_mi = parse_unit_float(min_mi, flag="--min-mi")
    loc, name = manifest_location(path, storage_options)
    df, run = _load(loc, name)
    missing = [c for c in ("path", "n_items", "mi_score") if c not in df.columns]
    if missing:
        raise StoreCorruptError(f"{loc.url}/{name}: expected manifest columns {list(COLUMNS)}, missing {missing}")
    for col in JSON_COLUMNS:
        if col in df.columns:
            df[col] = [json.loads(v) if isinstance(v, str) else v for v in df[col]]
    if min_mi is not None:
        df = df[df["mi_score"] >= min_mi].reset_index(drop=True)
    df["path_abs"] = [join(loc.url, p) for p in df["path"]]
    return df, run


def check_run_matches(loc: Location, existing: dict[str, Any], run: dict[str, Any]) -> None:
    """A rerun may resume only the same run; anything else would mix two sets in one manifest."""
    diff = sorted(k for k in set(existing) | set(run) if existing.get(k) != run.get(k))
    if diff:
        shown = ", ".join(f"{k}: {existing.get(k)!r} -> {run.get(k)!r}" for k in diff[:4])
        raise ConfigError(f"{loc.url} holds shards of another generate run ({shown}); expected the same arguments "
                          "to resume — choose another --out or pass --overwrite")
