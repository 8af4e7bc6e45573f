"""featstore.audio: decoding by file name keeps the old values and skip reasons; the polyphase
resampler evaluates torchaudio's kernel to within float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mirage.featstore import audio as A
from mirage.featstore.errors import BadAudioError


def _old_decode(path):
    with open(path, "rb") as fh:
        wave, sr = sf.read(fh, dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(sr)


@pytest.mark.parametrize("channels", [1, 2])
def test_decode_matches_file_object_read(tmp_path, channels):
    rng = np.random.default_rng(0)
    data = (0.3 * rng.standard_normal((5000, channels))).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, data, 22050, subtype="PCM_16")
    wave, sr = A.decode(str(path))
    old, old_sr = _old_decode(path)
    assert sr == old_sr == 22050 and wave.dtype == np.float32 and wave.ndim == 1
    assert wave.flags.c_contiguous and wave.tobytes() == old.tobytes()
    again, _ = A.decode("file://" + str(path))
    assert again.tobytes() == wave.tobytes()


def test_decode_reasons(tmp_path):
    with pytest.raises(BadAudioError) as exc:
        A.decode(str(tmp_path / "nowhere.wav"))
    assert exc.value.reason == "missing"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav file at all")
    with pytest.raises(BadAudioError) as exc:
        A.decode(str(junk))
    assert exc.value.reason == "unreadable"


@pytest.mark.parametrize("wave,reason", [
    (np.array([0.1, np.nan, 0.2], np.float32), "unreadable"),
    (np.array([np.nan] * 3, np.float32), "unreadable"),
    (np.array([0.0, -np.inf], np.float32), "unreadable"),
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(16000, np.float32), "silent"),
    (np.full(10, 0.5, np.float32), "too_short"),
])
def test_check_reasons(wave, reason):
    with pytest.raises(BadAudioError) as exc:
        A.check(wave, 16000)
    assert exc.value.reason == reason


def test_check_peak_from_either_sign():
    wave = np.full(16000, -0.5, np.float32)
    A.check(wave, 16000)  # loud negative samples are not silence


@pytest.mark.parametrize("orig,new", [(22050, 16000), (44100, 16000), (48000, 16000), (8000, 16000), (16000, 22050)])
def test_polyphase_is_torchaudio_within_rounding(orig, new):
    rng = np.random.default_rng(orig + new)
    for n in (1, 2, 441, 2205, 5000, 22050, 44101):
        x = rng.standard_normal(n).astype(np.float32)
        fast, ref = A.resample(x, orig, new, method="polyphase"), A.resample(x, orig, new)
        assert fast.shape == ref.shape and fast.dtype == np.float32
        np.testing.assert_allclose(fast, ref, rtol=0, atol=2e-6)


def test_resample_method_checked():
    with pytest.raises(ValueError, match="polyphase"):
        A.resample(np.zeros(10, np.float32), 22050, 16000, method="fast")
    x = np.ones(10, np.float32)
    assert A.resample(x, 16000, 16000, method="polyphase") is x
