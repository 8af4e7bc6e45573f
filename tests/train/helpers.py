"""Tiny feature stores and synthetic shard manifests for the train tests."""

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
    """Synthetic shards drawn near the real class means, one per MI score, plus manifest.parquet."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    items_real = real.items.sort_values("row")
    h_real = real.read("audio", items_real["row"].to_numpy())
    t_real = real.read("text", items_real["row"].to_numpy())
    rows = []
    for k, score in enumerate(mi_scores):
        pick = rng.integers(0, len(items_real), size=n_items)
        lab = items_real["label"].to_numpy()[pick]
        if labels is not LABELS:
            lab = np.asarray(labels)[rng.integers(0, len(labels), size=n_items)]
        h = h_real[pick] + 0.3 * rng.standard_normal(h_real[pick].shape).astype(np.float32)
        t = t_real[pick]
        items = pd.DataFrame({"utt_id": [f"syn{k}_{i:05d}" for i in range(n_items)], "path": "", "speaker": "synthetic",
                              "label": lab, "split": "train", "duration_s": np.nan, "text": ""})
        if text_source:
            items["text_utt_id"] = items_real["utt_id"].to_numpy()[pick]
        arrays = {"audio": h, "text": t, "mi_pointwise": np.full(n_items, score, np.float32)}
        if text_pred:
            arrays["text_pred"] = t + 0.1 * rng.standard_normal(t.shape).astype(np.float32)
        name = f"shard-{k:05d}"
        # the shard's own record (augment.vouch): readers check the manifest row against it
        record = {"kind": "synthetic", "trained_speakers": list(trained_speakers),
                  "source_content_hash": real.metadata.get("content_hash")}
        write_store(os.path.join(str(out_dir), name), items=items, arrays=arrays, metadata=record, chunk_rows=16)
        hist = {str(l): int(c) for l, c in zip(*np.unique(lab, return_counts=True))}
        rows.append({"path": name, "n_items": n_items, "mi_score": float(score), "mi_y_nats": 1.0, "mi_t_nats": 1.0,
                     "label_histogram": str(hist), "generator_fingerprint": "fixture", "seed": seed,
                     "source_content_hash": real.metadata.get("content_hash"),
                     "trained_speakers": list(trained_speakers)})
    manifest = os.path.join(str(out_dir), "manifest.parquet")
    pd.DataFrame(rows).to_parquet(manifest, index=False)
    return manifest
