"""One synthetic shard on disk: its item table, its metadata, its manifest row.

Locally a shard is written under a temporary name (straight to files, see
:mod:`augment.shard_files`) and renamed into place; on object stores, where there is no
atomic folder rename, through ``write_store`` at its final name, the manifest being the
commit either way.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np
import pandas as pd

from mirage.featstore.store.location import Location, is_remote, join

from mirage.augment import shards
from mirage.augment.checkpoint import GeneratorBundle
from mirage.augment.shard_files import can_write_direct, write_shard_files
from mirage.augment.shard_make import Shard
from mirage.augment.vouch import self_record

#: False sends every local shard through ``write_store`` (tests compare the two paths byte for byte).
DIRECT_WRITES = True


def shard_chunk_rows(n_rows: int, dim: int, *, target_bytes: int = 4 << 20) -> int:
    """Rows per chunk of a shard: ~4 MiB of the audio array, a power of two in [64, 4096].

    Shards are written whole, so (unlike extraction) small resumable units buy nothing;
    bigger chunks mean fewer writes and fewer blocks for the loaders.
    """
    from mirage.featstore.store.base import auto_chunk_rows

    return auto_chunk_rows(n_rows, 4 * max(1, dim), target_bytes=target_bytes, min_rows=64, units=None)


def shard_row_bytes(bundle: GeneratorBundle) -> int:
    """Bytes one synthetic item takes in its shard's arrays (a lower bound of the disk it needs)."""
    dims = bundle.config["dims"]
    floats = int(dims["audio"]) + 2  # audio, mi_pointwise, mi_score
    if bundle.use_text:
        floats += int(dims["text"]) * (2 if bundle.config["mode"] == "multimodal" else 1)  # text (+ text_pred)
    return 4 * floats + 1  # + status


def _store_local(tmp: str, final: str, *, items: pd.DataFrame, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                 chunk: int) -> str:
    """Write at ``tmp``, rename to ``final`` (replacing an unlisted leftover); returns the content hash."""
    from mirage.featstore.store import write_store

    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    if DIRECT_WRITES and can_write_direct(arrays, chunk):
        content_hash = write_shard_files(tmp, items=items, arrays=arrays, metadata=meta, chunk_rows=chunk)
    else:
        written = write_store(tmp, items=items, arrays=arrays, metadata=meta, chunk_rows=chunk)
        content_hash = written.metadata["content_hash"]
        written.close()
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return content_hash


def write_shard(loc: Location, bundle: GeneratorBundle, shard: Shard, run: dict, *, seed: int, slot: int,
                attempt: int) -> dict[str, Any]:
    """Write one shard (temp name + rename where the filesystem allows) and return its manifest row."""
    cfg = bundle.config
    names = cfg["labels"]
    n = len(shard.labels)
    codes = bundle.codes
    text = codes["text"].to_numpy()[shard.code_rows] if bundle.use_text else np.full(n, "", dtype=object)
    source = codes["utt_id"].to_numpy()[shard.code_rows] if bundle.use_text else np.full(n, "", dtype=object)
    prefix = f"syn-{seed}-{slot:05d}-"
    items = pd.DataFrame({
        "utt_id": [f"{prefix}{i:06d}" for i in range(n)],
        "path": [""] * n, "speaker": ["synthetic"] * n, "label": np.asarray(names, dtype=object)[shard.labels].tolist(),
        "split": ["synthetic"] * n, "duration_s": np.full(n, np.nan), "text": [str(x) for x in text],
        "text_utt_id": [str(x) for x in source],
    })
    s = shard.score
    label_counts = {names[k]: int(c) for k, c in enumerate(np.bincount(shard.labels, minlength=len(names))) if c}
    mi = {"mi_y_nats": s.mi_y_nats, "mi_y_ceiling_nats": s.mi_y_ceiling_nats, "mi_t_nats": s.mi_t_nats,
          "mi_t_ceiling_nats": s.mi_t_ceiling_nats, "mi_score": s.score}
    meta = {"kind": "synthetic", "corpus": cfg["source"].get("corpus"), "extractors": cfg["source"].get("extractors", {}),
            "generator": bundle.fingerprint, "seed": seed, "slot": slot, "attempt": attempt, "mode": cfg["mode"],
            "labels": names, "source_content_hash": cfg["source"]["content_hash"], "speakers": cfg["speakers"],
            "mi": {k: (None if not np.isfinite(v) else v) for k, v in mi.items()}, "mi_band": run["mi_band"],
            **self_record(cfg, bundle.fingerprint)}  # the shard vouches for itself (augment.vouch)
    name = shards.SHARD_PATTERN.format(slot=slot)
    chunk = shard_chunk_rows(n, shard.arrays["audio"].shape[1])
    final = join(loc.url, name)
    if is_remote(loc.url):  # no atomic folder rename on object stores: the manifest is the commit
        from mirage.featstore.store import write_store

        written = write_store(final, items=items, arrays=shard.arrays, metadata=meta, storage_options=loc.storage_options,
                              chunk_rows=chunk)
        content_hash = written.metadata["content_hash"]
        written.close()
    else:
        content_hash = _store_local(join(loc.url, f"{shards.TMP_PREFIX}{name}"), final, items=items, arrays=shard.arrays,
                                    meta=meta, chunk=chunk)
    return {"path": name, "n_items": n, "label_counts": label_counts, **mi, "generator": bundle.fingerprint,
            "seed": seed, "slot": slot, "attempt": attempt, "source_content_hash": cfg["source"]["content_hash"],
            "trained_speakers": cfg["speakers"], "mode": cfg["mode"], "format": "zarr", "arrays": sorted(shard.arrays),
            "shard_content_hash": content_hash}
