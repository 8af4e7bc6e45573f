"""Decode, downmix, resample and sanity-check audio.

Decoding uses soundfile (fsspec URLs are opened through fsspec); resampling uses torchaudio.
Every failure becomes a :class:`BadAudioError` with a short reason code, so the extraction
engine can skip the item and list why.
"""

from __future__ import annotations

import functools

import numpy as np

from mirage.featstore.errors import BadAudioError

#: Shortest clip we embed; shorter ones are skipped as ``too_short``.
MIN_DURATION_S = 0.1
#: Peak amplitude under which a clip counts as ``silent`` (about -80 dBFS).
SILENCE_PEAK = 1e-4


def _open(path: str):
    if "://" in path and not path.startswith("file://"):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path.removeprefix("file://"), "rb")


def decode(path: str) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 mono; returns ``(wave, sample_rate)``."""
    import soundfile as sf

    try:
        with _open(path) as fh:
            wave, sr = sf.read(fh, dtype="float32", always_2d=True)
    except FileNotFoundError as exc:
        raise BadAudioError("missing", f"{path}: file not found") from exc
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError for junk
        raise BadAudioError("unreadable", f"{path}: cannot decode ({type(exc).__name__}: {exc})") from exc
    return wave.mean(axis=1), int(sr)


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig_sr, new_sr)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a 1-D float32 wave with torchaudio's windowed-sinc resampler."""
    if orig_sr == new_sr:
        return wave
    import torch

    with torch.inference_mode():
        out = _resampler(orig_sr, new_sr)(torch.from_numpy(np.ascontiguousarray(wave)))
    return out.numpy().astype(np.float32, copy=False)


def check(wave: np.ndarray, sample_rate: int, *, path: str = "<array>", min_duration_s: float = MIN_DURATION_S) -> None:
    """Raise BadAudioError if the wave is empty, non-finite, too short or silent."""
    if wave.size == 0:
        raise BadAudioError("empty", f"{path}: no samples")
    if not np.all(np.isfinite(wave)):
        raise BadAudioError("unreadable", f"{path}: contains NaN/inf samples")
    duration_s = wave.size / sample_rate
    if duration_s < min_duration_s:
        raise BadAudioError("too_short", f"{path}: {duration_s:.3f} s, expected at least {min_duration_s} s")
    if float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise BadAudioError("silent", f"{path}: peak below {SILENCE_PEAK} (digital silence)")


def load(path: str, sample_rate: int, *, min_duration_s: float = MIN_DURATION_S) -> np.ndarray:
    """Decode, check and resample ``path`` to ``sample_rate``; float32 mono."""
    wave, sr = decode(path)
    check(wave, sr, path=path, min_duration_s=min_duration_s)
    return resample(wave, sr, sample_rate)
