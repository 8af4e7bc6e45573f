"""The signal operations behind augmented views (:mod:`featstore.views`): coloured and babble
noise at an SNR, speed perturbation, pitch shift, reverb with a synthetic room response.

:func:`apply_view` is a pure function of the wave and the view's recorded parameters (every
random choice was sampled before, from the view's seed), so the same parameters give the same
bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import numpy as np

from mirage.featstore.errors import BadAudioError, ConfigError
from mirage.featstore.views import CLEAN, VIEW_NAMES

__all__ = ["coloured_noise", "babble_noise", "add_noise", "speed", "pitch", "room_impulse_response", "reverb",
           "apply_view"]

def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def coloured_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise: white, pink (1/f power) or brown (1/f² power), shaped in the frequency domain."""
    white = rng.standard_normal(n)
    if kind != "white":
        alpha = {"pink": 1.0, "brown": 2.0}[kind]
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n)
        f[0] = f[1] if n > 1 else 1.0
        spec = spec / f ** (alpha / 2)
        white = np.fft.irfft(spec, n=n)
    white = white - white.mean()
    return (white / math.sqrt(max(_power(white), 1e-20))).astype(np.float64)


def babble_noise(n: int, talkers: Sequence[dict], load: Callable[[str], np.ndarray]) -> np.ndarray:
    """Unit-power babble: each talker's wave (looped to length, from its recorded offset), each at
    unit power, summed. Talkers that cannot be decoded are left out."""
    total = np.zeros(n, np.float64)
    used = 0
    for t in talkers:
        try:
            w = np.asarray(load(t["path"]), np.float64)
        except BadAudioError:
            continue
        if w.size == 0 or _power(w) <= 0:
            continue
        start = int(float(t.get("offset", 0.0)) * len(w))
        w = np.roll(w, -start)
        w = np.tile(w, -(-n // len(w)))[:n]
        total += w / math.sqrt(_power(w))
        used += 1
    if not used:
        raise BadAudioError("unreadable", "noise view: none of the babble talkers could be decoded")
    total -= total.mean()
    return total / math.sqrt(max(_power(total), 1e-20))


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + g * noise`` with g set so that power(wave) / power(g * noise) = 10^(snr/10)."""
    p_s = _power(wave)
    gain = math.sqrt(p_s / (_power(noise) * 10 ** (snr_db / 10))) if p_s > 0 else 0.0
    return wave.astype(np.float64) + gain * noise


def speed(wave: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    orig = int(round(sample_rate * factor))
    if orig == sample_rate:
        return wave
    with torch.inference_mode():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave, np.float32)), orig, sample_rate)
    return out.numpy()


def pitch(wave: np.ndarray, sample_rate: int, semitones: float, *, n_fft: int = 512) -> np.ndarray:
    """Shift by ``semitones`` keeping the duration: phase-vocoder time stretch, then resampling.

    torchaudio's ``pitch_shift`` resamples by the exact ratio 2^(n/12), whose sample rates have
    a tiny common divisor: its sinc kernel then has thousands of phases and one 2-s clip takes
    seconds. Here the resampling ratio is rounded to a multiple of 1/100 of the rate (at most
    0.09 semitones off, the same for every clip) so the kernel stays small.
    """
    import torch
    import torchaudio.functional as AF

    if semitones == 0:
        return wave
    step = max(1, sample_rate // 100)
    orig = max(step, int(round(sample_rate * 2.0 ** (float(semitones) / 12.0) / step)) * step)
    rate = orig / sample_rate  # >1 plays faster: the stretch shortens, the resampling restores the length
    x = torch.from_numpy(np.ascontiguousarray(wave, np.float32))
    hop = n_fft // 4
    window = torch.hann_window(n_fft)
    with torch.inference_mode():
        spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
        advance = torch.linspace(0, math.pi * hop, spec.shape[-2])[..., None]
        stretched = AF.phase_vocoder(spec, rate, advance)
        y = torch.istft(stretched, n_fft, hop, window=window, length=int(round(len(x) / rate)))
        out = AF.resample(y, orig, sample_rate)
    out = out.numpy()
    if len(out) >= len(wave):
        return np.ascontiguousarray(out[: len(wave)], np.float32)
    return np.pad(out, (0, len(wave) - len(out))).astype(np.float32)


def room_impulse_response(sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Direct path + exponentially decaying Gaussian tail (−60 dB after ``rt60`` s), unit energy."""
    n = max(2, int(round(sample_rate * rt60 * 1.2)))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-math.log(1000.0) * t / rt60)
    pre = int(0.002 * sample_rate)  # the tail starts ~2 ms after the direct sound
    tail[:pre] = 0.0
    h = 0.3 * tail / math.sqrt(max(float(np.sum(tail ** 2)), 1e-20))
    h[0] = 1.0
    return h / math.sqrt(float(np.sum(h ** 2)))


def reverb(wave: np.ndarray, sample_rate: int, rt60: float, rir_seed: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    h = room_impulse_response(sample_rate, rt60, np.random.default_rng(rir_seed))
    with torch.inference_mode():
        out = AF.fftconvolve(torch.from_numpy(np.ascontiguousarray(wave, np.float64)), torch.from_numpy(h))
    y = out.numpy()[: len(wave)]
    p_in, p_out = _power(wave), _power(y)
    return y * math.sqrt(p_in / p_out) if p_out > 0 else y


def apply_view(wave: np.ndarray, sample_rate: int, aug_type: str, params: dict[str, Any] | str,
               load: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    """The view of a decoded float32 mono wave at ``sample_rate``, from its recorded parameters.

    ``load(path)`` decodes a babble talker at ``sample_rate``. Deterministic: no randomness
    beyond the seeds in ``params``. The result is float32, peak-limited to [-1, 1]."""
    if isinstance(params, str):
        params = json.loads(params) if params else {}
    if aug_type == CLEAN:
        return wave
    if aug_type == "noise":
        rng = np.random.default_rng(int(params["noise_seed"]))
        if params["kind"] == "babble":
            if load is None:
                raise ConfigError("noise view: babble needs a loader for the talkers' audio")
            noise = babble_noise(len(wave), params["babble"], load)
        else:
            noise = coloured_noise(len(wave), params["kind"], rng)
        out = add_noise(wave, noise, float(params["snr"]))
    elif aug_type == "speed":
        out = speed(wave, sample_rate, float(params["factor"]))
    elif aug_type == "pitch":
        out = pitch(wave, sample_rate, float(params["semitones"]))
    elif aug_type == "reverb":
        out = reverb(wave, sample_rate, float(params["rt60"]), int(params["rir_seed"]))
    else:
        raise ConfigError(f"expected a view among {', '.join(VIEW_NAMES)}, got {aug_type!r}")
    out = np.asarray(out, np.float64)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        out = out / peak
    return out.astype(np.float32)


