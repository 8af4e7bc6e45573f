"""Tiny feature stores and synthetic shard sets (written by augment's own writers) for the train tests."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mirage.featstore.store import write_store

LABELS = ("angry", "happy", "neutral", "sad")


def make_real_store(path, *, n_speakers: int = 5, per_class: int = 10, audio_dim: int = 32, text_dim: int = 16,
                    separation: float = 0.5, seed: int = 0, chunk_rows: int = 16, corpus: str = "fixture",
                    sessions: bool = False, splits: dict[str, str] | None = None, row_ids: bool = False,
                    format: str = "zarr"):
    """4 classes x ``n_speakers`` speakers x ``per_class`` items with class-dependent Gaussian features.

    With ``row_ids`` the first audio feature is the item's row number (for loader tests).
    """
    rng = np.random.default_rng(seed)
    mu_a = rng.standard_normal((len(LABELS), audio_dim)) * separation / np.sqrt(audio_dim) * 4
    mu_t = rng.standard_normal((len(LABELS), text_dim)) * separation / np.sqrt(text_dim) * 4
    rows, audio, text = [], [], []
    for s in range(n_speakers):
        spk = f"{s + 1:02d}"
        off = rng.standard_normal(audio_dim) * 0.3
        for c, lab in enumerate(LABELS):
            for i in range(per_class):
                row = {"utt_id": f"{spk}_{lab}_{i:02d}", "path": f"/nowhere/{spk}_{lab}_{i}.wav", "speaker": spk,
                       "label": lab, "split": (splits or {}).get(spk, "train"), "duration_s": 1.0, "text": f"{lab} words"}
                if sessions:
                    row["session"] = s // 2 + 1
                rows.append(row)
                audio.append(mu_a[c] + off + rng.standard_normal(audio_dim))
                text.append(mu_t[c] + rng.standard_normal(text_dim))
    items = pd.DataFrame(rows).sort_values("utt_id", kind="stable").reset_index(drop=True)
    order = np.argsort([r["utt_id"] for r in rows], kind="stable")
    a = np.asarray(audio, np.float32)[order]
    t = np.asarray(text, np.float32)[order]
    if row_ids:
        a[:, 0] = np.arange(len(a), dtype=np.float32)
    meta = {"corpus": corpus, "extractors": {"audio": {"extractor": "fixture"}, "text": {"extractor": "fixture"}}}
    return write_store(str(path), items=items, arrays={"audio": a, "text": t}, metadata=meta, chunk_rows=chunk_rows,
                       format=format)


def make_shards(out_dir, real, *, trained_speakers, n_items: int = 40, mi_scores=(0.9,), text_pred: bool = True,
                labels=LABELS, seed: int = 0, text_source: bool = False):
    """Synthetic shards drawn near the real class means, one per MI score, plus manifest.parquet.

    Written by augment's own writers (:func:`augment.shard_write.write_shard` for each shard,
    :func:`augment.shards.write_manifest` for the manifest), for a stand-in generator bundle:
    the files, schema and self-records are those ``augment generate`` writes; only the feature
    values are made up here. ``text_pred`` makes it a multimodal generator (shards hold
    ``text_pred``); ``text_source`` keys each row's conditioning text to a real item of
    ``real`` (as a generator fitted on that store does), otherwise to code items it does not hold.
    """
    from mirage.augment import shards
    from mirage.augment.checkpoint import GeneratorBundle
    from mirage.augment.mi import MIScore
    from mirage.augment.shard_make import Shard
    from mirage.augment.shard_write import write_shard
    from mirage.featstore.store.location import Location

    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    items_real = real.items.sort_values("row")
    h_real = real.read("audio", items_real["row"].to_numpy())
    t_real = real.read("text", items_real["row"].to_numpy())
    names = list(labels)
    codes = items_real[["utt_id", "speaker", "label", "text"]].reset_index(drop=True)
    if not text_source:
        codes["utt_id"] = [f"code-{i:05d}" for i in range(len(codes))]
    mode = "multimodal" if text_pred else "ser"
    fingerprint = f"fixture-{seed}-{'-'.join(sorted(map(str, trained_speakers)))}"
    config = {"fingerprint": fingerprint, "labels": names, "mode": mode, "speakers": sorted(map(str, trained_speakers)),
              "excluded_speakers": [], "dims": {"audio": int(h_real.shape[1]), "text": int(t_real.shape[1])},
              "source": {"corpus": real.metadata.get("corpus"), "extractors": real.metadata.get("extractors", {}),
                         "content_hash": real.metadata.get("content_hash"), "url": real.url}}
    bundle = GeneratorBundle(config=config, align=None, generator=None, discriminator=None, tensors={}, codes=codes)
    run = {"generator": fingerprint, "seed": int(seed), "n_requested": n_items * len(mi_scores), "shard_size": n_items,
           "min_mi": 0.0, "mi_band": [0.0, 1.0], "balanced": False, "max_attempts": 1, "max_rounds": 1, "mode": mode,
           "labels": names, "source_content_hash": config["source"]["content_hash"], "source_store": real.url,
           "trained_speakers": config["speakers"], "version": 1}
    loc = Location(str(out_dir))
    rows = []
    for k, score in enumerate(mi_scores):
        pick = rng.integers(0, len(items_real), size=n_items)
        if labels is LABELS:
            y = np.array([names.index(v) for v in items_real["label"].to_numpy()[pick]], dtype=np.int64)
        else:
            y = rng.integers(0, len(names), size=n_items).astype(np.int64)
        h = h_real[pick] + 0.3 * rng.standard_normal(h_real[pick].shape).astype(np.float32)
        t = t_real[pick]
        points = np.full(n_items, score, np.float32)
        arrays = {"audio": h.astype(np.float32), "text": t, "mi_pointwise": points, "mi_score": points}
        if text_pred:
            arrays["text_pred"] = t + 0.1 * rng.standard_normal(t.shape).astype(np.float32)
        mi = MIScore(1.0, float(np.log(len(names))), 1.0, 2.0, float(score), points, points)
        rows.append(write_shard(loc, bundle, Shard(labels=y, arrays=arrays, code_rows=pick, score=mi), run,
                                seed=seed, slot=k, attempt=0))
    shards.write_manifest(loc, rows, run)
    return os.path.join(str(out_dir), shards.MANIFEST_NAME)
