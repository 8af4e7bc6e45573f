"""Fixtures: a small labelled store with class-dependent Gaussian clusters, and fitted generators.

4 classes x 4 speakers x 12 items in 32-d audio + 16-d text; each sentence is said
several times (text identities repeat, as in acted corpora). Generators are fitted once
per session with small networks so the whole augment suite stays fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

LABELS = ("angry", "happy", "neutral", "sad")
SPEAKERS = ("s01", "s02", "s03", "s04")
SMALL = {"hidden": 64, "proj_dim": 32, "noise_dim": 8, "batch_size": 32, "eval_samples": 256}


def make_store(path, *, n_per=12, audio_dim=32, text_dim=16, with_text=True, with_labels=True, seed=0,
               nan_rows=0):
    from mirage.featstore.store import write_store

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.6, size=(len(LABELS), audio_dim)).astype(np.float32)
    spk_shift = rng.normal(0, 0.5, size=(len(SPEAKERS), audio_dim)).astype(np.float32)
    sentences = rng.normal(0, 1, size=(len(LABELS), 3, text_dim)).astype(np.float32)
    rows, audio, text = [], [], []
    for si, spk in enumerate(SPEAKERS):
        for li, lab in enumerate(LABELS):
            for i in range(n_per):
                sent = i % 3
                rows.append({"utt_id": f"{spk}_{lab}_{i:02d}", "path": f"wav/{spk}_{lab}_{i:02d}.wav", "speaker": spk,
                             "label": lab if with_labels else "", "split": "train", "duration_s": 2.0,
                             "text": f"{lab} sentence {sent}"})
                audio.append(centres[li] + spk_shift[si] + rng.normal(0, 1.0, audio_dim))
                text.append(sentences[li, sent])
    items = pd.DataFrame(rows)
    audio = np.asarray(audio, dtype=np.float32) * 3.0 + 5.0  # off-centre, off-scale: standardisation matters
    if nan_rows:
        audio[:nan_rows] = np.nan
    arrays = {"audio": audio}
    if with_text:
        arrays["text"] = np.asarray(text, dtype=np.float32)
    meta = {"kind": "features", "corpus": "fixture", "extractors": {"audio": {"extractor": "fixture", "dim": audio_dim}}}
    return write_store(str(path), items=items, arrays=arrays, metadata=meta)


@pytest.fixture(scope="session")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "feats.zarr"
    make_store(path).close()
    return path


@pytest.fixture(scope="session")
def textfree_store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store_nt") / "feats.zarr"
    make_store(path, with_text=False).close()
    return path


def fit_small(store, out, **kw):
    from mirage.augment.fit import fit_generator

    args = {**SMALL, "epochs": 25, "align_epochs": 25, "seed": 0, "progress": False, **kw}
    return fit_generator(str(store), str(out), **args)


@pytest.fixture(scope="session")
def trained_model(store_path, tmp_path_factory):
    """Multimodal, λ = 1."""
    return fit_small(store_path, tmp_path_factory.mktemp("gen") / "gen", mode="multimodal")


@pytest.fixture(scope="session")
def cgan_model(store_path, tmp_path_factory):
    """Same as trained_model but λ = 0 (the conditional-GAN ablation)."""
    return fit_small(store_path, tmp_path_factory.mktemp("gen0") / "gen", mode="multimodal", lambda_mi=0.0)


@pytest.fixture(scope="session")
def untrained_model(store_path, tmp_path_factory):
    """Stage 1 fitted, G never trained."""
    return fit_small(store_path, tmp_path_factory.mktemp("genu") / "gen", mode="multimodal", epochs=0)


@pytest.fixture(scope="session")
def ser_model(textfree_store_path, tmp_path_factory):
    return fit_small(textfree_store_path, tmp_path_factory.mktemp("gen_ser") / "gen")
