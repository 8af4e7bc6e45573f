"""``logmel``: log-mel statistics plus prosodic functionals; no weights, no download.

Frames: 16 kHz, 25 ms Hann window (400-point FFT, 201 bins), 10 ms hop, 64 mel bins
(20-8000 Hz, HTK scale), natural log of the mel power + 1e-6. Only frames that lie wholly
inside an utterance are used (no centre padding), so an utterance's vector does not depend
on what it is batched with. The whole batch is framed and transformed at once.

Layout of the vector (``feature_names()`` names every entry):

- ``pooling="meanstd"`` (the default, 200-d): per-bin mean of log-mel (64), per-bin std of
  log-mel (64), per-bin std of the frame-to-frame delta (64; the delta's mean is ~0 by
  construction and is left out), then the 8 prosodic functionals.
- ``pooling="mean"`` (72-d): per-bin mean of log-mel (64), then the 8 prosodic functionals.

Prosodic functionals: frame energy in dB re full scale (mean, std, 10-90 percentile
range), voiced-frame fraction, mean voicing strength (peak normalised autocorrelation),
and pitch in semitones re 100 Hz over voiced frames (mean, std, 10-90 percentile range).
Pitch is a cheap autocorrelation tracker (40 ms frames every 40 ms, 80-500 Hz, no path
smoothing): within 0.2 st on steady harmonic signals, octave errors possible on real
speech.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from mirage.featstore.extractors.base import AudioExtractor
from mirage.featstore.extractors.pooling import check_pooling

SR = 16000
WIN, HOP, N_MELS = 400, 160, 64  # 25 ms Hann window, no zero padding (201 bins), 10 ms hop
F_MIN, F_MAX = 20.0, 8000.0
LOG_FLOOR = 1e-6
INTRA_OP_THREADS = 1
# pitch proxy: autocorrelation of the 0-4 kHz band of 40 ms Hann frames taken every 40 ms
# (640-point FFT at 16 kHz, bins up to 4 kHz, inverse 320-point FFT: lags at 8 kHz),
# 80-500 Hz, with Boersma's window correction. The FFT is not zero-padded: the circular
# wrap-around only adds the Hann tails' far lags (a few percent) and is the same for the
# window correction.
P_WIN, P_BINS, P_DC_BINS = 640, 161, 2
F0_MIN, F0_MAX = 80.0, 500.0
OCTAVE_COST = 0.1  # per octave of lag: prefer the shortest lag that is nearly as periodic
VOICED_R = 0.5
VOICING_DYNAMIC_DB = 35.0

PROSODY = (
    "energy_db_mean",
    "energy_db_std",
    "energy_db_range",
    "voiced_fraction",
    "voicing_strength_mean",
    "f0_st_mean",
    "f0_st_std",
    "f0_st_range",
)


@functools.lru_cache(maxsize=4)
def _constants(device: str):
    """Window, mel filterbank (bins, N_MELS), energy scale and the pitch tracker's tables."""
    import torch
    import torchaudio

    win = torch.hann_window(WIN, periodic=False, device=device)
    fb = torchaudio.functional.melscale_fbanks(WIN // 2 + 1, F_MIN, F_MAX, N_MELS, SR, norm=None, mel_scale="htk")
    # mean square of the windowed frame from the one-sided power spectrum (Parseval)
    e_scale = 2.0 / (WIN * float(win.square().sum()))
    pwin = torch.hann_window(P_WIN, periodic=False, device=device)
    p_sr = SR // 2
    lag_lo, lag_hi = int(p_sr // F0_MAX), int(np.ceil(p_sr / F0_MIN))
    rw = _band_autocorr(pwin.unsqueeze(0), drop_dc=False)[0]
    rw = (rw[lag_lo : lag_hi + 1] / rw[0]).clamp_min(1e-3)
    lags = torch.arange(lag_lo, lag_hi + 1, device=device, dtype=torch.float32)
    pitch = {
        "win": pwin,
        "rw": rw,
        "lag_lo": lag_lo,
        "cost": OCTAVE_COST * torch.log2(lags / lag_lo),
        "st": 12.0 * torch.log2(p_sr / lags / 100.0),  # semitones re 100 Hz of each lag
    }
    return win, fb.to(device), e_scale, pitch


def _band_autocorr(frames, drop_dc: bool = True):
    """Autocorrelation (lags at 8 kHz) of the 0-4 kHz band of windowed 16 kHz frames."""
    import torch

    spec = torch.fft.rfft(frames)[..., :P_BINS]
    power = spec.real.square().addcmul_(spec.imag, spec.imag)
    if drop_dc:
        power[..., :P_DC_BINS] = 0.0  # DC offset and its window leakage, far below 80 Hz
    return torch.fft.irfft(power, n=2 * (P_BINS - 1))


def _pad_batch(waves: list[np.ndarray], min_len: int, device: str):
    import torch

    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), max(int(lengths.max()), min_len))
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return out.to(device), lengths.to(device)


def _frame_mask(lengths, n_frames: int):
    """(B, T) bool: frames wholly inside each utterance (at least one)."""
    import torch

    valid = ((lengths - WIN) // HOP + 1).clamp_min(1)
    return torch.arange(n_frames, device=lengths.device).unsqueeze(0) < valid.unsqueeze(1)


def _masked_stats(x, w, n):
    """Mean and population std over time of ``x`` (B, T, D) or (B, T).

    ``w`` is the (B, T) float frame mask, ``n`` its (B, 1) clamped sum; the sums run as
    batched mat-vec products. The variance is taken about the mean (two passes), which
    keeps float32 exact enough that batching does not show in the result.
    """
    flat = x.dim() == 2
    if flat:
        x = x.unsqueeze(-1)
    wt = w.unsqueeze(1)  # (B, 1, T)
    mean = (wt @ x).squeeze(1) / n
    centred = x - mean.unsqueeze(1)
    std = ((wt @ centred.square_()).squeeze(1) / n).sqrt()
    return (mean.squeeze(-1), std.squeeze(-1)) if flat else (mean, std)


def _masked_range(x, mask, lo: float = 0.1, hi: float = 0.9):
    """Percentile range (hi - lo) of (B, T) values where mask holds; 0 when nothing is."""
    import torch

    big = torch.finfo(x.dtype).max
    vals, _ = torch.where(mask, x, big).sort(dim=1)
    n = mask.sum(dim=1)
    last = (n - 1).clamp_min(0).to(x.dtype)
    i_lo = (lo * last).floor().long().unsqueeze(1)
    i_hi = (hi * last).floor().long().unsqueeze(1)
    rng = (vals.gather(1, i_hi) - vals.gather(1, i_lo)).squeeze(1)
    return torch.where(n > 0, rng, torch.zeros_like(rng))


class LogMelExtractor(AudioExtractor):
    name = "logmel"

    def __init__(self, pooling: str | None = None, device: str = "cpu"):
        self.pooling = check_pooling(pooling or "meanstd")
        self.device = device

    def config(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "pooling": self.pooling,
            "sample_rate": SR,
            "n_mels": N_MELS,
            "win_ms": 25,
            "hop_ms": 10,
            "dim": self.dim,
        }

    @property
    def dim(self) -> int:
        return (N_MELS if self.pooling == "mean" else 3 * N_MELS) + len(PROSODY)

    @property
    def sample_rate(self) -> int:
        return SR

    def feature_names(self) -> list[str]:
        blocks = ["logmel_mean"] if self.pooling == "mean" else ["logmel_mean", "logmel_std", "delta_std"]
        return [f"{b}_{i}" for b in blocks for i in range(N_MELS)] + list(PROSODY)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        if not waves:
            return np.zeros((0, self.dim), dtype=np.float32)
        from mirage.featstore.threads import fixed_threads

        win, fb, e_scale, _ = _constants(self.device)
        # one intra-op thread: these tensors are small, and a second OpenMP thread mostly spins
        # (6x the CPU per clip on a busy 2-core box; the values are the same at any count)
        with torch.inference_mode(), fixed_threads(INTRA_OP_THREADS if self.device == "cpu" else None):
            x, lengths = _pad_batch(waves, P_WIN, self.device)
            spec = torch.fft.rfft(x.unfold(-1, WIN, HOP) * win)  # (B, T, bins)
            mel = spec.real.square().addcmul_(spec.imag, spec.imag) @ fb  # (B, T, N_MELS)
            mask = _frame_mask(lengths, mel.shape[1])
            w = mask.to(mel.dtype)
            n = w.sum(1, keepdim=True).clamp_min(1.0)
            # frame energy (dB re full scale): the triangles tile 20 Hz-8 kHz, so the summed
            # mel power is the band energy without another pass over the spectrum
            energy = 10.0 * torch.log10(mel.sum(-1) * e_scale + 1e-10)  # (B, T)
            parts = [self._spectral(mel, w, n), self._energy(energy, w, n, mask), self._pitch(x, lengths)]
            out = torch.cat(parts, dim=1)
        return out.cpu().numpy().astype(np.float32, copy=False)

    def _spectral(self, mel, w, n):
        import torch

        logmel = torch.log(mel + LOG_FLOOR)
        mean, std = _masked_stats(logmel, w, n)
        if self.pooling == "mean":
            return mean
        wd = w[:, 1:]
        _, dstd = _masked_stats(logmel[:, 1:] - logmel[:, :-1], wd, wd.sum(1, keepdim=True).clamp_min(1.0))
        return torch.cat([mean, std, dstd], dim=1)

    @staticmethod
    def _energy(energy, w, n, mask):
        import torch

        mean, std = _masked_stats(energy, w, n)
        return torch.stack([mean, std, _masked_range(energy, mask)], dim=1)

    def _pitch(self, x, lengths):
        """Voiced fraction, mean voicing strength, f0 mean/std/range (semitones re 100 Hz)."""
        import torch

        p = _constants(self.device)[3]
        r = _band_autocorr(x.unfold(-1, P_WIN, P_WIN) * p["win"])  # (B, T', lags)
        r0 = r[..., 0]
        lo = p["lag_lo"]
        rn = r[..., lo : lo + p["rw"].shape[0]] / (r0.unsqueeze(-1).clamp_min(1e-12) * p["rw"])
        best = (rn - p["cost"]).argmax(-1)
        strength = rn.gather(-1, best.unsqueeze(-1)).squeeze(-1).clamp(0.0, 1.0)
        f0_st = p["st"][best]

        n_valid = (lengths // P_WIN).clamp_min(1)
        pmask = torch.arange(r.shape[1], device=x.device).unsqueeze(0) < n_valid.unsqueeze(1)
        pe = 10.0 * torch.log10(r0 + 1e-10)  # band energy; only differences to the max matter
        pe_max = torch.where(pmask, pe, torch.full_like(pe, -1e4)).amax(dim=1, keepdim=True)
        voiced = pmask & (strength > VOICED_R) & (pe > pe_max - VOICING_DYNAMIC_DB)
        pw, vw = pmask.to(x.dtype), voiced.to(x.dtype)
        pn, vn = pw.sum(1, keepdim=True), vw.sum(1, keepdim=True)
        v_strength, _ = _masked_stats(strength, pw, pn.clamp_min(1.0))
        f_mean, f_std = _masked_stats(f0_st, vw, vn.clamp_min(1.0))
        v_frac = (vn / pn.clamp_min(1.0)).squeeze(1)
        return torch.stack([v_frac, v_strength, f_mean, f_std, _masked_range(f0_st, voiced)], dim=1)
