"""The self-generated ``demo`` corpus: shape, determinism, caching, and that it carries emotion."""

from __future__ import annotations

import numpy as np
import pytest

import mirage.featstore.corpora.demo as demo
from mirage.featstore.corpora import get_corpus
from mirage.featstore.corpora.demo import DemoCorpus, make_speakers, synthesize_utterance
from mirage.featstore.errors import ConfigError


@pytest.fixture(scope="module")
def demo_items(tmp_path_factory):
    """The registry's default demo corpus (256 clips), generated once.

    It goes where tests/conftest.py points MIRAGE_CACHE, so other tests of the same
    session that load the default demo corpus reuse these files.
    """
    cache = tmp_path_factory.getbasetemp() / "cache" / "mirage"
    return get_corpus("demo").load_items(cache_dir=cache)


def _files(df):
    return {u: open(p, "rb").read() for u, p in zip(df["utt_id"], df["path"])}


def test_default_demo_shape(demo_items):
    import soundfile as sf

    df = demo_items
    assert len(df) == 256
    assert df["label"].value_counts().to_dict() == {e: 64 for e in ("neutral", "happy", "sad", "angry")}
    assert df["speaker"].nunique() == 8
    assert df.groupby("gender")["speaker"].nunique().to_dict() == {"female": 4, "male": 4}
    assert df["duration_s"].between(1.5, 3.0).all()
    assert set(df["split"]) == {"train"}
    assert df["text"].str.len().gt(5).all()
    info = sf.info(df["path"].iloc[0])
    assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)


def test_demo_texts_mostly_carry_the_emotion(demo_items):
    df = demo_items
    shared = df["text"].isin(demo.SHARED_TEXTS)
    assert 0.15 < shared.mean() < 0.35                    # some sentences are spoken in every emotion
    for emo, bank in demo.TEXTS.items():
        own = df.loc[~shared & (df["label"] == emo), "text"]
        assert len(own) and own.isin(bank).all()
        assert own.nunique() >= 4


def _mel_matrix(n_mels=40, n_fft=512, sr=16000):
    mel = lambda f: 2595 * np.log10(1 + f / 700)                      # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)                        # noqa: E731
    edges = hz(np.linspace(mel(50), mel(sr / 2), n_mels + 2))
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))


def _logmel_stats(paths):
    """Mean and std over time of 40 log-mel bands (numpy only: fast and thread-free)."""
    import soundfile as sf

    fb, win = _mel_matrix(), np.hanning(512)
    feats = []
    for p in paths:
        wave, _ = sf.read(p, dtype="float32")
        frames = np.lib.stride_tricks.sliding_window_view(wave, 512)[::160] * win
        m = np.log(np.abs(np.fft.rfft(frames, axis=1)) ** 2 @ fb.T + 1e-8)
        feats.append(np.concatenate([m.mean(0), m.std(0)]))
    return np.asarray(feats)


def test_demo_emotion_is_learnable_across_speakers_but_not_trivially(demo_items):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    df = demo_items
    y, groups = np.array(df["label"].tolist()), np.array(df["speaker"].tolist())
    with threadpool_limits(1):   # tiny problem: BLAS threads only fight over the 2 cores
        X = _logmel_stats(df["path"])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        pred = cross_val_predict(model, X, y, groups=groups, cv=LeaveOneGroupOut())
    uar = recall_score(y, pred, average="macro")
    assert 0.55 < uar < 0.97, uar                          # chance is 0.25

    # and the prosodic levels go the expected way
    import soundfile as sf

    level = {e: np.mean([20 * np.log10(np.sqrt(np.mean(sf.read(p)[0] ** 2)))
                         for p in df.loc[df["label"] == e, "path"]]) for e in ("sad", "neutral", "angry")}
    assert level["sad"] < level["neutral"] < level["angry"]


def test_demo_is_deterministic_and_seeded(tmp_path):
    small = dict(n_speakers=2, n_per_class=2)
    a = DemoCorpus(**small).load_items(tmp_path / "a")
    b = DemoCorpus(**small).load_items(tmp_path / "b")
    c = DemoCorpus(**small, seed=1).load_items(tmp_path / "c")
    assert len(a) == 16 and a["speaker"].nunique() == 2 and a["label"].nunique() == 4
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    assert set(fa) == set(fc) and all(fa[u] != fc[u] for u in fa)
    assert DemoCorpus(**small).fingerprint != DemoCorpus(**small, seed=1).fingerprint


def test_demo_cache_default_location_and_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRAGE_CACHE", str(tmp_path / "cache"))
    corpus = DemoCorpus(n_speakers=2, n_per_class=1)
    first = corpus.load_items()
    target = tmp_path / "cache" / "demo" / corpus.fingerprint
    assert all(p.startswith(str(target / "wav")) for p in first["path"])
    assert (target / "demo.json").is_file() and (target / "items.csv").is_file()

    def boom(**kwargs):
        raise AssertionError("regenerated although the cache was complete")

    monkeypatch.setattr(demo, "synthesize_utterance", boom)
    again = DemoCorpus(n_speakers=2, n_per_class=1).load_items()
    assert again.equals(first)
    # the folder doubles as a csv-adapter corpus
    as_csv = get_corpus("csv").load_items(target / "items.csv")
    assert list(as_csv["utt_id"]) == list(first["utt_id"])
    assert list(as_csv["label"]) == list(first["label"]) and list(as_csv["path"]) == list(first["path"])


def test_demo_crash_leaves_no_half_corpus(tmp_path, monkeypatch):
    real, calls = demo.synthesize_utterance, []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("killed")
        return real(**kwargs)

    monkeypatch.setattr(demo, "synthesize_utterance", flaky)
    root = tmp_path / "demo-root"
    with pytest.raises(RuntimeError, match="killed"):
        DemoCorpus(n_speakers=2, n_per_class=1).load_items(root)
    assert not root.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(demo, "synthesize_utterance", real)
    assert len(DemoCorpus(n_speakers=2, n_per_class=1).load_items(root)) == 8


def test_demo_refuses_foreign_or_mismatched_root(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="--root"):
        DemoCorpus(n_speakers=2, n_per_class=1).load_items(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"
    root = tmp_path / "d"
    DemoCorpus(n_speakers=2, n_per_class=1).load_items(root)
    with pytest.raises(ConfigError, match="other parameters"):
        DemoCorpus(n_speakers=2, n_per_class=1, seed=5).load_items(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(DemoCorpus(n_speakers=2, n_per_class=1).load_items(empty)) == 8


@pytest.mark.parametrize("kwargs", [dict(n_speakers=1), dict(n_per_class=0), dict(sample_rate=100),
                                    dict(n_speakers="8")])
def test_demo_rejects_bad_sizes(kwargs):
    with pytest.raises(ConfigError):
        DemoCorpus(**kwargs)


def test_synthesize_utterance_is_pure():
    spk = make_speakers(2, seed=3)
    assert [s.gender for s in spk] == ["female", "male"] and spk[0].f0_hz > spk[1].f0_hz
    args = dict(emotion="happy", speaker_profile=spk[0], text="I am so happy about this!", seed=7)
    w1, w2 = synthesize_utterance(**args), synthesize_utterance(**args)
    assert w1.dtype == np.float32 and np.array_equal(w1, w2)
    assert 1.5 <= len(w1) / 16000 <= 3.0 and np.abs(w1).max() <= 1.0 and np.abs(w1).max() > 0.01
    assert not np.array_equal(w1, synthesize_utterance(**{**args, "seed": 8}))
    w8k = synthesize_utterance(**args, sample_rate=8000)
    assert abs(len(w8k) / 8000 - len(w1) / 16000) < 0.01
    with pytest.raises(ConfigError, match="emotion"):
        synthesize_utterance(**{**args, "emotion": "elated"})
