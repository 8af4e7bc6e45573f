"""hf-audio and hf-text on tiny random-weight models built from configs (no download)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mirage.featstore.errors import ConfigError
from mirage.featstore.extractors import extractor_from_config, get_audio_extractor, get_loaded, get_text_extractor
from tests.fixtures.models import build_bert, tiny_ast, tiny_bert, tiny_hubert_groupnorm, tiny_wav2vec2  # noqa: F401

SR = 16000


@pytest.fixture(scope="module")
def waves():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    tone = (0.2 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return {"short": tone[: int(0.45 * SR)], "long": (0.1 * rng.standard_normal(int(1.3 * SR))).astype(np.float32)}


def _check_padding_invariance(ex, waves, atol=2e-5):
    alone = ex.embed([waves["short"]])
    batched = ex.embed([waves["long"], waves["short"]])
    np.testing.assert_allclose(batched[1], alone[0], atol=atol, rtol=1e-4)
    assert not np.allclose(batched[0], batched[1])


# -- audio --------------------------------------------------------------------------------
def test_wav2vec2_config_and_dims(tiny_wav2vec2, waves):
    ex = get_audio_extractor(str(tiny_wav2vec2))
    cfg = ex.config()
    assert cfg["extractor"] == "hf-audio" and cfg["model_type"] == "wav2vec2"
    assert cfg["sample_rate"] == SR and cfg["dim"] == 32 and cfg["layer"] is None and cfg["pooling"] == "mean"
    assert cfg["revision"].startswith("local-")
    assert ex._net is None  # config() never loads weights
    out = ex.embed([waves["short"], waves["long"]])
    assert out.shape == (2, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    ms = get_audio_extractor(str(tiny_wav2vec2), pooling="meanstd")
    assert ms.dim == 64 and ms.embed([waves["short"]]).shape == (1, 64)


def test_wav2vec2_masked_pooling_ignores_padding(tiny_wav2vec2, waves):
    _check_padding_invariance(get_audio_extractor(str(tiny_wav2vec2)), waves)
    _check_padding_invariance(get_audio_extractor(str(tiny_wav2vec2), layer=1, pooling="meanstd"), waves)


def test_groupnorm_model_runs_one_by_one(tiny_hubert_groupnorm, waves):
    ex = get_audio_extractor(str(tiny_hubert_groupnorm))
    assert ex.config()["model_type"] == "hubert"
    _check_padding_invariance(ex, waves, atol=1e-6)


def test_layer_selection(tiny_wav2vec2, waves):
    outs = [get_audio_extractor(str(tiny_wav2vec2), layer=k).embed([waves["short"]]) for k in (0, 1, 2)]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])
    for bad in (3, -1):
        with pytest.raises(ConfigError, match=rf"expected --audio-layer in 0\.\.2, got {bad}"):
            get_audio_extractor(str(tiny_wav2vec2), layer=bad).config()


def test_determinism_and_round_trip(tiny_wav2vec2, waves):
    ex = get_audio_extractor(str(tiny_wav2vec2), layer=2, pooling="meanstd")
    first = ex.embed([waves["short"], waves["long"]])
    assert first.tobytes() == ex.embed([waves["short"], waves["long"]]).tobytes()
    back = extractor_from_config(ex.config())
    assert back.config() == ex.config() and back.fingerprint() == ex.fingerprint()
    assert back.embed([waves["short"], waves["long"]]).tobytes() == first.tobytes()


def test_pickle_before_and_after_load(tiny_wav2vec2, waves):
    ex = get_audio_extractor(str(tiny_wav2vec2))
    small = len(pickle.dumps(ex))
    ref = ex.embed([waves["short"]])  # loads
    blob = pickle.dumps(ex)
    assert small < 2000 and len(blob) < 2000  # weights never travel
    clone = pickle.loads(blob)
    assert clone._net is None
    np.testing.assert_array_equal(clone.embed([waves["short"]]), ref)


def test_get_loaded_shares_one_model(tiny_wav2vec2):
    a = get_loaded(get_audio_extractor(str(tiny_wav2vec2)))
    b = get_loaded(pickle.loads(pickle.dumps(get_audio_extractor(str(tiny_wav2vec2)))))
    assert a is b and a._net is not None


def test_ast(tiny_ast, waves):
    ex = get_audio_extractor(str(tiny_ast))
    cfg = ex.config()
    assert cfg["model_type"] == "audio-spectrogram-transformer" and cfg["dim"] == 32
    out = ex.embed([waves["short"], waves["long"]])  # shorter and longer than max_length (0.64 s)
    assert out.shape == (2, 32) and np.isfinite(out).all()
    _check_padding_invariance(ex, waves, atol=1e-6)
    assert get_audio_extractor(str(tiny_ast), layer=1, pooling="meanstd").embed([waves["short"]]).shape == (1, 64)


# -- text ---------------------------------------------------------------------------------
def test_bert_text(tiny_bert):
    ex = get_text_extractor(str(tiny_bert))
    cfg = ex.config()
    assert cfg["extractor"] == "hf-text" and cfg["model_type"] == "bert" and cfg["dim"] == 32
    assert cfg["max_length"] == 64
    texts = ["i am so happy", "stop get out of my way , it was a terrible terrible day !", "", None]
    out = ex.embed(texts)
    assert out.shape == (4, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    alone = ex.embed(texts[:1])
    np.testing.assert_allclose(out[0], alone[0], atol=2e-5)
    assert out.tobytes() == ex.embed(texts).tobytes()
    long_text = " ".join(["happy"] * 500)  # truncated at 64 tokens, no error
    assert ex.embed([long_text]).shape == (1, 32)


def test_bert_layers_and_pooling(tiny_bert):
    text = ["the news is great"]
    l0 = get_text_extractor(str(tiny_bert), layer=0).embed(text)
    l2 = get_text_extractor(str(tiny_bert), layer=2).embed(text)
    assert not np.allclose(l0, l2)
    assert get_text_extractor(str(tiny_bert), pooling="meanstd").embed(text).shape == (1, 64)
    assert get_text_extractor(str(tiny_bert), pooling="cls").embed(text).shape == (1, 32)
    with pytest.raises(ConfigError, match=r"expected --text-layer in 0\.\.2, got 5"):
        get_text_extractor(str(tiny_bert), layer=5).dim
    ex = get_text_extractor(str(tiny_bert), layer=1)
    assert extractor_from_config(ex.config()).fingerprint() == ex.fingerprint()


def test_half_precision_checkpoint_runs_in_float32(tmp_path):
    ex = get_text_extractor(str(build_bert(tmp_path / "bert16", half=True)))
    out = ex.embed(["i am so happy"])
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert str(next(ex._net.parameters()).dtype) == "torch.float32"


def test_shared_extractor_is_thread_safe(tiny_bert, tiny_wav2vec2, waves):
    from concurrent.futures import ThreadPoolExecutor

    text = get_loaded(get_text_extractor(str(tiny_bert)))
    audio = get_loaded(get_audio_extractor(str(tiny_wav2vec2)))
    texts = [["i am so happy"], ["stop get out of my way !", "the news is great"]] * 4
    ref_t = [text.embed(t) for t in texts]
    ref_a = audio.embed([waves["short"]])
    with ThreadPoolExecutor(4) as pool:
        got_t = list(pool.map(text.embed, texts))
        got_a = list(pool.map(lambda _: audio.embed([waves["short"]]), range(4)))
    for a, b in zip(got_t, ref_t):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a in got_a:
        np.testing.assert_allclose(a, ref_a, atol=1e-6)


def test_long_clips_are_encoded_in_windows_with_exact_merged_statistics(tiny_wav2vec2, waves, monkeypatch):
    """A clip past LONG_CLIP_WINDOW_S: per-window encoding, pooled as if all frames were pooled at once."""
    import torch

    from mirage.featstore.extractors import hf_audio

    ex = get_audio_extractor(str(tiny_wav2vec2), pooling="meanstd")
    short = waves["short"]
    before = ex.embed([short])
    monkeypatch.setattr(hf_audio, "LONG_CLIP_WINDOW_S", 1.0)
    long = np.concatenate([waves["long"], short, waves["long"]]).astype("f4")
    assert len(long) > 2 * ex.sample_rate
    # clips within one window are untouched; batching a long clip with a short one changes neither
    np.testing.assert_array_equal(ex.embed([short]), before)
    both = ex.embed([short, long])
    np.testing.assert_allclose(both[0], before[0], atol=1e-6)
    # reference: the frames of every window (the feature extractor applied per window), pooled together
    n_win = -(-len(long) // ex.sample_rate)
    bounds = np.linspace(0, len(long), n_win + 1).round().astype(int)
    frames = []
    with torch.inference_mode():
        for a, b in zip(bounds[:-1], bounds[1:]):
            inputs = ex._fe(long[a:b], sampling_rate=ex.sample_rate, return_tensors="pt")
            frames.append(ex._net(input_values=inputs["input_values"]).last_hidden_state[0])
    allf = torch.cat(frames).double()
    expected = torch.cat([allf.mean(0), allf.std(0, unbiased=False)]).numpy()
    np.testing.assert_allclose(both[1], expected, atol=2e-5)
    np.testing.assert_allclose(ex.embed([long])[0], both[1], atol=1e-6)
