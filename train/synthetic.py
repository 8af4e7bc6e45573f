"""Synthetic shards as the trainer sees them: manifests read (and MI-filtered) without
opening a shard, then the chosen shards read through the Dask block loader.

A manifest (Parquet, written by ``augment generate``) has one row per shard: its ``path``
(relative to the manifest's folder), ``n_items``, the normalised MI score ``mi_score``,
the speakers its generator was trained on, the source store's fingerprint, ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.train.loaders import Source, cached_store, load_rows, store_token

log = logging.getLogger(__name__)

MI_COLUMN = "mi_score"
SPEAKERS_COLUMN = "trained_speakers"
SOURCE_HASH_COLUMN = "source_content_hash"
#: Item columns that may name the real utterance whose text conditioned a synthetic item.
TEXT_SOURCE_COLUMNS = ("text_utt_id", "source_utt_id", "cond_utt_id")


def read_manifest(path: str, storage_options: dict[str, Any] | None = None, *,
                  allow_incomplete: bool = False) -> pd.DataFrame:
    """One manifest's rows (``path`` = the shard folder or its manifest.parquet), ``path_abs`` resolved.

    Every row is checked against the shard it points at (:mod:`augment.vouch`: generator,
    trained speakers, content hash — one small metadata read per shard, no array read), and
    a set short of its requested items is refused unless ``allow_incomplete``.
    """
    from mirage.augment.shards import read_manifest_run
    from mirage.augment.vouch import check_complete, check_rows
    from mirage.featstore.kinds import SHARD_SET, require_input

    require_input(str(path), SHARD_SET, flag="--synthetic", storage_options=storage_options)
    df, run = read_manifest_run(str(path), storage_options=storage_options)
    check_complete(str(path), df, run, allow_incomplete=allow_incomplete)
    check_rows(df, run, storage_options)
    return df


def read_manifests(paths: Sequence[str], *, min_mi: float | None = None, storage_options: dict[str, Any] | None = None,
                   allow_incomplete: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(all_rows, kept_rows)`` of the manifests; kept = ``mi_score >= min_mi``. Each row is
    checked against its shard's own record; no array is read."""
    frames = []
    for path in paths:
        df = read_manifest(str(path), storage_options, allow_incomplete=allow_incomplete)
        df["manifest"] = str(path)
        frames.append(df)
    if not frames:
        empty = pd.DataFrame(columns=["path_abs", "manifest", MI_COLUMN])
        return empty, empty
    rows = pd.concat(frames, ignore_index=True)
    if min_mi is None or min_mi <= 0:
        return rows, rows
    if MI_COLUMN not in rows.columns:
        raise ConfigError(f"--min-mi: expected manifests with a {MI_COLUMN!r} column, got {sorted(rows.columns)}; "
                          "regenerate the shards with `augment generate`")
    keep = rows[MI_COLUMN].astype(float).to_numpy() >= float(min_mi)
    for _, r in rows[~keep].iterrows():
        log.info("skipping shard %s: normalised MI %.3f < --min-mi %.3f", r["path_abs"], float(r[MI_COLUMN]), min_mi)
    return rows, rows[keep].reset_index(drop=True)


@dataclass
class SyntheticData:
    """Synthetic rows of one fold: ĥ, optionally the conditioning text t and prediction t'."""

    h: np.ndarray
    y: np.ndarray
    t: np.ndarray | None = None
    t_pred: np.ndarray | None = None
    text_source: np.ndarray | None = None  # utt_id of the real item whose text conditioned each row
    shards: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.y)

    @classmethod
    def empty(cls, dim: int) -> "SyntheticData":
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int64))


def shard_sources(shards: pd.DataFrame, labels: Sequence[str], *, columns: tuple[str, ...],
                  storage_options: dict[str, Any] | None = None, weight: float = 1.0) -> list[Source]:
    """One loader :class:`Source` per shard (all its items), labels mapped to ``labels``' indices."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for path in shards["path_abs"].tolist():
        store = cached_store(path, storage_options)
        missing = [c for c in columns if not store.has(c)]
        if missing:
            raise ConfigError(f"synthetic shard {path}: expected arrays {list(columns)}, missing {missing}; "
                              "generate multimodal shards (augment fit --mode multimodal) or use --mode ser")
        items = store.items.sort_values("row", kind="stable")
        unknown = sorted(set(items["label"].astype(str)) - set(index))
        if unknown:
            raise ConfigError(f"synthetic shard {path}: expected labels within the real store's {list(labels)}, "
                              f"got {unknown}; generate from a generator fitted on this store")
        y = items["label"].astype(str).map(index).to_numpy(np.int64)
        out.append(Source(path, columns, items["row"].to_numpy(), y, weight=weight, storage_options=storage_options,
                          token=store_token(store)))
    return out


def load_synthetic(shards: pd.DataFrame, labels: Sequence[str], *, mode: str, audio_dim: int,
                   storage_options: dict[str, Any] | None = None, scheduler: str = "threads", client=None) -> SyntheticData:
    """Read every shard listed in ``shards`` (block tasks through Dask) into one :class:`SyntheticData`."""
    if shards is None or shards.empty:
        return SyntheticData.empty(audio_dim)
    hs, ys, ts, tps, srcs = [], [], [], [], []
    for src in shard_sources(shards, labels, columns=("audio",), storage_options=storage_options):
        store = cached_store(src.url, storage_options)
        if store.dim("audio") != audio_dim:
            raise ConfigError(f"synthetic shard {src.url}: expected audio features of width {audio_dim} (the real store's), "
                              f"got {store.dim('audio')}; generate from a generator fitted on this store")
        cols = ["audio"]
        if mode == "multimodal":
            if not store.has("text"):
                raise ConfigError(f"synthetic shard {src.url}: --mode multimodal expected a text array, got {store.array_names}; "
                                  "generate with a generator fitted in multimodal mode")
            cols += ["text"] + (["text_pred"] if store.has("text_pred") else [])
        x = load_rows(Source(src.url, tuple(cols), src.rows, src.labels, storage_options=storage_options, token=src.token),
                      scheduler=scheduler, client=client)
        check_finite(x, url=f"synthetic shard {src.url}", utt_ids=store.items.sort_values("row", kind="stable")["utt_id"].to_numpy())
        widths = np.cumsum([store.dim(c) for c in cols])[:-1]
        parts = np.split(x, widths, axis=1)
        hs.append(parts[0])
        ys.append(src.labels)
        ts.append(parts[1] if len(parts) > 1 else None)
        tps.append(parts[2] if len(parts) > 2 else None)
        items = store.items.sort_values("row", kind="stable")
        col = next((c for c in TEXT_SOURCE_COLUMNS if c in items.columns), None)
        srcs.append(items[col].astype(str).to_numpy() if col else None)
    data = SyntheticData(np.concatenate(hs), np.concatenate(ys), shards=shards["path_abs"].astype(str).tolist())
    if mode == "multimodal":
        data.t = np.concatenate(ts)
        if all(t is not None for t in tps):
            data.t_pred = np.concatenate(tps)
        if all(s is not None for s in srcs):
            data.text_source = np.concatenate(srcs)
    return data


def check_finite(x: np.ndarray, *, url: str, utt_ids, what: str = "features") -> None:
    """Raise :class:`ConfigError` when a row holds NaN/inf: a classifier would fail on it deep
    inside torch (or learn nothing), so say which store and item instead."""
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, dtype=bool)
    if bad.any():
        first = np.asarray(utt_ids)[int(np.argmax(bad))]
        raise ConfigError(f"{url}: {int(bad.sum())} of {len(x)} items hold NaN/inf {what} (first: {first}); expected "
                          "finite values — re-extract the store (`featstore verify` lists the rows) or drop those items")


def note_empty_synthetic(per_method: dict[str, list], generative: Sequence[str], min_mi: float | None) -> dict[str, dict]:
    """Per generative method whose folds got no synthetic row: a ``warning`` (and the folds) for
    compare.json, logged too. With a high ``--min-mi`` every shard may be discarded, and the
    method's row would silently equal ``none``."""
    notes: dict[str, dict] = {}
    for method, folds in per_method.items():
        if method not in generative or not folds:
            continue
        empty = [f.name for f in folds if int(f.n_train_synthetic) == 0]
        if not empty:
            continue
        why = (f"every shard scored below --min-mi {min_mi:g}" if min_mi else "no synthetic shard was usable")
        text = (f"{method}: {len(empty)} of {len(folds)} folds trained on no synthetic row ({why}); "
                + ("its result is that of `none` there" if len(empty) < len(folds) else "its row equals `none`")
                + (" — lower --min-mi" if min_mi else ""))
        log.warning("train compare: %s", text)
        notes[method] = {"warning": text, "folds_without_synthetic": empty}
    return notes
