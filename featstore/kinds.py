"""What kind of folder a path holds, and the checks every command makes with it.

Every folder mirage writes declares its kind in the metadata file it writes anyway:

============================  =====================================================
kind                          declared by
============================  =====================================================
``feature-store``             ``mirage.json`` (Zarr) / the ``mirage`` attribute (HDF5), ``kind: features``
``synthetic-shard``           the same, ``kind: synthetic`` (one shard of a set)
``shard-set``                 ``manifest.parquet`` (schema metadata ``mirage_kind``)
``generator``                 ``config.json`` with ``kind: generator`` (or ``format: mirage-generator``)
``run``                       ``metrics.json`` / ``compare.json`` (train fit, compare, cross)
============================  =====================================================

Folders written before kinds were declared are recognised by the same files, so the
checks cover them too. A command refuses an input of the wrong kind (:func:`require_input`,
:func:`require_features`) and refuses to write into a folder of another kind
(:func:`check_output`), each in one line (:class:`ConfigError`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mirage.featstore.errors import ConfigError

log = logging.getLogger(__name__)

FEATURES = "feature-store"
SHARD = "synthetic-shard"
SHARD_SET = "shard-set"
GENERATOR = "generator"
RUN = "run"
KINDS = (FEATURES, SHARD, SHARD_SET, GENERATOR, RUN)
#: The ``kind`` values a store's own metadata holds (what ``featstore info`` shows).
STORE_KIND_VALUES = {"features": FEATURES, "synthetic": SHARD}
#: Schema-metadata key of a manifest that holds its kind (beside ``mirage``, the run settings).
MANIFEST_KIND_KEY = b"mirage_kind"
RUN_FILES = ("metrics.json", "compare.json")

_WORDS = {
    FEATURES: "a feature store",
    SHARD: "a single synthetic shard",
    SHARD_SET: "a synthetic shard set (manifest.parquet + shards)",
    GENERATOR: "a generator folder (augment fit --out)",
    RUN: "a train run folder",
}
_HINTS = {
    FEATURES: "pass a store written by `featstore extract`",
    SHARD: "pass the shard set's folder (or its manifest.parquet) as --synthetic, not one of its shards",
    SHARD_SET: "pass a shard set as --synthetic",
    GENERATOR: "pass a generator folder as --model",
    RUN: "pass a store written by `featstore extract`",
}


def describe(kind: str | None) -> str:
    return _WORDS.get(kind, "nothing mirage wrote") if kind else "nothing mirage wrote"


def store_kind(metadata: dict[str, Any]) -> str:
    """The kind a store's metadata declares (stores written before kinds: ``features``)."""
    return STORE_KIND_VALUES.get(str(metadata.get("kind") or "features"), FEATURES)


def detect_kind(url: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """The kind of what lies at ``url`` (one of :data:`KINDS`), or None (nothing, or not mirage's).

    Reads at most one small metadata file; a few existence checks otherwise."""
    from mirage.featstore.store.location import Location, storage_errors

    with storage_errors(str(url), storage_options):
        loc = Location(str(url), storage_options)
        if loc.fs.isfile(loc.path):
            return _file_kind(loc)
        if loc.exists("mirage.json"):
            try:
                return store_kind(json.loads(loc.read_bytes("mirage.json")))
            except ValueError:
                return FEATURES  # a damaged store is still a store; its reader says what is wrong
        if Location(loc.url + ".partial.zarr", storage_options).exists("mirage.json"):
            return FEATURES  # an unfinished HDF5 extraction
        if loc.exists("manifest.parquet"):
            return SHARD_SET
        if loc.exists("config.json") and (loc.exists("weights.safetensors") or _declares(loc, "config.json", GENERATOR)):
            return GENERATOR
        if any(loc.exists(name) for name in RUN_FILES):
            return RUN
        return None


def _declares(loc, name: str, kind: str) -> bool:
    try:
        meta = json.loads(loc.read_bytes(name))
    except (ValueError, OSError):
        return False
    return isinstance(meta, dict) and (meta.get("kind") == kind or meta.get("format") == "mirage-generator")


def _file_kind(loc) -> str | None:
    """A regular file: an HDF5 feature store (or shard) when it opens as one."""
    if loc.path.endswith(".parquet"):
        return SHARD_SET if loc.path.rsplit("/", 1)[-1] == "manifest.parquet" else None
    try:
        from mirage.featstore.store.hdf5_store import Hdf5Backend

        backend = Hdf5Backend(loc.url, loc.storage_options)
    except Exception:  # noqa: BLE001 — not HDF5 (or damaged): not a kind we can name
        return None
    try:
        return store_kind(backend.attrs())
    except Exception:  # noqa: BLE001 — an HDF5 file without (readable) mirage metadata
        return None
    finally:
        backend.close()


def require_input(url: str, expected: str, *, flag: str, storage_options: dict[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` when ``url`` holds something mirage wrote of another kind than
    ``expected`` (nothing at all is left to the reader, which says what it expected)."""
    found = detect_kind(url, storage_options)
    if found is not None and found != expected:
        raise ConfigError(f"{flag} {url}: expected {describe(expected)}, got {describe(found)}; {_HINTS[expected]}")


def require_features(store, *, flag: str = "--store") -> None:
    """Raise :class:`ConfigError` when an opened store is a synthetic shard, not a feature store."""
    found = store_kind(store.metadata)
    if found != FEATURES:
        raise ConfigError(f"{flag} {store.url}: expected {describe(FEATURES)}, got {describe(found)}; "
                          f"{_HINTS[FEATURES]} (synthetic shards go to train fit --synthetic as a set)")


def check_output(url: str, expected: str, *, flag: str, storage_options: dict[str, Any] | None = None,
                 also: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` when ``url`` already holds a folder of another kind than
    ``expected`` (or one of ``also``): mirage never writes one kind of output into another."""
    found = detect_kind(url, storage_options)
    if found is not None and found != expected and found not in also:
        raise ConfigError(f"{flag} {url}: expected a new folder or {describe(expected)}, got {describe(found)}; "
                          f"writing here would mix two kinds of output — choose another {flag}")
