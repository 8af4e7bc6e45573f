"""Speech-like signal synthesis for the ``demo`` corpus (pure numpy, deterministic).

Source-filter model: a Rosenberg glottal pulse train (its open quotient sets the
voice's brightness) plus aspiration noise, shaped frame by frame by a cascade of four
formant resonances that move between vowel targets taken from the text; unvoiced
onsets get high-passed frication noise. Prosody (pitch level, range, declination and
accents, speaking rate, loudness, jitter, breathiness) comes from the speaker profile
and the emotion style, each perturbed per utterance.

Random parameters are sampled first (:func:`sample_params`, a plain dataclass that can
be logged) and then applied by :func:`render`; :func:`synthesize_utterance` does both
from one integer seed, so the same arguments always give the same samples.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from mirage.featstore.errors import ConfigError

EMOTIONS = ("neutral", "happy", "sad", "angry")


@dataclasses.dataclass(frozen=True)
class SpeakerProfile:
    speaker: str             # "F01"
    gender: str              # "female" / "male"
    f0_hz: float             # habitual pitch
    formant_scale: float     # vocal-tract length: formant frequencies x this
    rate_sps: float          # habitual syllables per second
    expressiveness: float    # how strongly the speaker shows emotion (scales every effect)
    breathiness: float       # aspiration noise relative to voicing
    level_db: float          # recording level offset


@dataclasses.dataclass(frozen=True)
class EmotionStyle:
    f0_shift_st: float       # pitch level change, semitones
    f0_range: float          # accent/wander excursion multiplier
    rate: float              # speaking-rate multiplier
    level_db: float          # loudness change
    open_quotient: float     # glottal open quotient (low = pressed, bright voice)
    formant_shift: float     # formant scaling (smiling > 1, lax/low < 1)
    jitter: float            # relative cycle-to-cycle pitch perturbation
    breath: float            # aspiration multiplier
    final_st: float          # pitch movement over the last syllable


#: Emotion styles, after the usual acoustic correlates (Scherer 2003; Banse & Scherer 1996).
STYLES = {
    "neutral": EmotionStyle(0.0, 1.0, 1.00, 0.0, 0.60, 1.00, 0.006, 1.0, -2.0),
    "happy":   EmotionStyle(3.0, 1.6, 1.08, 2.5, 0.52, 1.05, 0.007, 0.9, 2.5),
    "sad":     EmotionStyle(-1.5, 0.55, 0.80, -4.5, 0.72, 0.97, 0.010, 1.8, -3.0),
    "angry":   EmotionStyle(2.0, 1.2, 1.12, 5.0, 0.40, 1.03, 0.014, 0.6, -4.0),
}

#: Vowel formant targets F1..F4 (Hz, adult male; Peterson & Barney 1952) and bandwidths.
VOWELS = {
    "a": (730.0, 1090.0, 2440.0, 3400.0), "e": (530.0, 1840.0, 2480.0, 3500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0), "o": (570.0, 840.0, 2410.0, 3400.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
}
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 180.0])

N_FFT, HOP = 512, 256
CR = 1000              # control rate (Hz) of envelopes and pitch
PULSE_TABLE = 4096     # phase resolution of the glottal pulse table
MIN_S, MAX_S = 1.5, 3.0
BASE_DBFS = -26.0


@dataclasses.dataclass(frozen=True)
class UtteranceParams:
    """Everything random about one utterance, sampled before rendering."""
    f0_hz: float
    f0_range: float
    rate_sps: float
    level_dbfs: float
    open_quotient: float
    formant_scale: float
    jitter: float
    breath: float
    final_st: float
    lead_s: float
    trail_s: float
    vowels: tuple[str, ...]
    syllable_s: tuple[float, ...]
    accents_st: tuple[float, ...]


def syllables(text: str) -> list[str]:
    """Vowel letter of each syllable (vowel group) of ``text``; at least one per word."""
    out = []
    for word in re.findall(r"[a-z']+", text.lower()):
        groups = re.findall(r"[aeiouy]+", word) or ["e"]
        out += ["i" if g[0] == "y" else g[0] for g in groups]
    return out or ["a"]


def sample_params(emotion: str, profile: SpeakerProfile, text: str,
                  rng: np.random.Generator) -> UtteranceParams:
    """Draw one utterance's prosody: the emotion style scaled by the speaker and jittered."""
    if emotion not in STYLES:
        raise ConfigError(f"demo: expected an emotion in {', '.join(STYLES)}, got {emotion!r}; use one of those")
    st, e = STYLES[emotion], profile.expressiveness
    shift = e * st.f0_shift_st + rng.normal(0.0, 1.2)
    f0_range = float(np.exp(e * np.log(st.f0_range) + rng.normal(0.0, 0.2)))
    rate = profile.rate_sps * float(np.exp(e * np.log(st.rate) + rng.normal(0.0, 0.08)))
    level = BASE_DBFS + profile.level_db + e * st.level_db + rng.normal(0.0, 2.5)
    oq = float(np.clip(0.6 + e * (st.open_quotient - 0.6) + rng.normal(0.0, 0.05), 0.3, 0.85))
    fscale = profile.formant_scale * (1.0 + e * (st.formant_shift - 1.0)) * float(np.exp(rng.normal(0, 0.02)))
    lead, trail = rng.uniform(0.08, 0.2), rng.uniform(0.1, 0.25)
    vowels = syllables(text)
    n_max = max(3, int((MAX_S - lead - trail) * rate))
    vowels = vowels[:n_max]
    syl = rng.uniform(0.75, 1.25, size=len(vowels)) / rate
    while len(syl) > 3 and lead + trail + syl.sum() > MAX_S:      # long text: stop early
        syl, vowels = syl[:-1], vowels[:-1]
    total = lead + trail + syl.sum()
    if total < MIN_S or total > MAX_S:   # short text: slow down; still too long: speed up
        syl *= (np.clip(total, MIN_S, MAX_S) - lead - trail) / syl.sum()
    accents = np.where(rng.random(len(vowels)) < 0.4, rng.uniform(1.0, 3.0, len(vowels)), 0.0)
    return UtteranceParams(
        f0_hz=float(profile.f0_hz * 2 ** (shift / 12)), f0_range=f0_range, rate_sps=float(rate),
        level_dbfs=float(level), open_quotient=oq, formant_scale=float(fscale),
        jitter=float(st.jitter * rng.uniform(0.7, 1.4)),
        breath=float(profile.breathiness * st.breath ** e * rng.uniform(0.7, 1.3)),
        final_st=float(e * st.final_st + rng.normal(0.0, 1.0)),
        lead_s=float(lead), trail_s=float(trail), vowels=tuple(vowels),
        syllable_s=tuple(float(s) for s in syl), accents_st=tuple(float(a) for a in accents),
    )


def _ctrl_noise(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Unit-variance noise varying over about ``width`` control samples (interpolated points)."""
    width = max(int(width), 1)
    ctrl = rng.standard_normal(n // width + 3)
    x = np.interp(np.arange(n) / width, np.arange(len(ctrl)), ctrl) if width > 1 else ctrl[:n]
    return (x - x.mean()) / (x.std() + 1e-12)


def _rosenberg_table(oq: float, size: int = PULSE_TABLE) -> np.ndarray:
    """One period of Rosenberg glottal flow, sampled at ``size`` phase points."""
    phase = np.arange(size) / size
    tp, tn = 0.62 * oq, 0.38 * oq
    u = np.zeros(size)
    rise = phase < tp
    fall = (phase >= tp) & (phase < tp + tn)
    u[rise] = 0.5 * (1.0 - np.cos(np.pi * phase[rise] / tp))
    u[fall] = np.cos(0.5 * np.pi * (phase[fall] - tp) / tn)
    return u.astype(np.float32)


def _formant_gain(freqs: np.ndarray, formants: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """|H(f)| of a cascade of 2-pole resonators: (frames, 4) formants -> (frames, bins)."""
    f2 = (freqs.astype(np.float32) ** 2)[None, :]
    h = np.ones((formants.shape[0], len(freqs)), dtype=np.float32)
    for j in range(formants.shape[1]):
        F2 = (formants[:, j].astype(np.float32) ** 2)[:, None]
        h *= F2 / np.sqrt((F2 - f2) ** 2 + np.float32(bw[j] ** 2) * f2)
    return h


def _stft_filter(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Filter ``x`` frame by frame with magnitude responses ``gain`` (frames, bins); OLA."""
    n = len(x)
    n_frames = gain.shape[0]
    k = N_FFT // HOP
    pad = np.zeros((n_frames + k) * HOP, dtype=np.float32)
    pad[: n] = x
    win = np.sqrt(np.hanning(N_FFT + 1)[:-1]).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP][:n_frames] * win
    y = np.fft.irfft(np.fft.rfft(frames, axis=1) * gain, n=N_FFT, axis=1) * win
    out = np.zeros((n_frames + k, HOP), dtype=np.float32)
    for i in range(k):
        out[i:i + n_frames] += y[:, i * HOP:(i + 1) * HOP]
    return out.reshape(-1)[:n]  # periodic hann (sqrt x sqrt) at 50% overlap sums to 1


def render(p: UtteranceParams, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """Render sampled parameters to a float32 wave in [-1, 1].

    Envelopes and the pitch contour are built at a 1 kHz control rate and interpolated
    to audio rate once; only the source, the filter and the noises run per sample.
    """
    sr, f32 = sample_rate, np.float32
    syl = np.asarray(p.syllable_s)
    n = int(round((p.lead_s + syl.sum() + p.trail_s) * sr))
    starts = p.lead_s + np.concatenate([[0.0], np.cumsum(syl)[:-1]])
    ends = starts + syl
    onset = syl * rng.uniform(0.2, 0.35, size=len(syl))          # consonant part of each syllable
    unvoiced = rng.random(len(syl)) < 0.45                       # fricative vs voiced onset
    centers = starts + onset + 0.5 * (syl - onset)
    speech_end = ends[-1]

    # control-rate tracks: amplitude, voicing, frication
    n_c = int(np.ceil(n * CR / sr)) + 2
    tc = np.arange(n_c) / CR
    env = np.zeros((3, n_c))
    for i in range(len(syl)):
        a, b, c = int(starts[i] * CR), int((starts[i] + onset[i]) * CR), int(ends[i] * CR)
        nucleus = np.sin(np.linspace(0.0, np.pi, max(c - b, 1))) ** 0.6
        env[0, b:c] = nucleus[: c - b] * (1.0 + 0.35 * (p.accents_st[i] > 0))   # stressed: louder
        env[1, (b if unvoiced[i] else a):c] = 1.0
        if unvoiced[i]:
            env[2, a:b] = 0.35
        else:
            env[0, a:b] = 0.25
    k = np.hanning(12)[1:-1]
    env = np.stack([np.convolve(e, k / k.sum(), mode="same") for e in env])

    # pitch contour in semitones: declination, accents, final movement, slow wander
    prog = np.clip((tc - p.lead_s) / max(speech_end - p.lead_s, 1e-3), 0.0, 1.0)
    st = 1.5 - 3.0 * prog
    for c, h in zip(centers, p.accents_st):
        if h > 0:   # Gaussian pitch accent on the syllable nucleus
            st += p.f0_range * h * np.exp(-0.5 * ((tc - c) / 0.07) ** 2)
    st += p.final_st * np.clip((tc - starts[-1]) / max(speech_end - starts[-1], 1e-3), 0.0, 1.0)
    st += 0.8 * p.f0_range * _ctrl_noise(rng, n_c, 150)
    f0 = p.f0_hz * 2.0 ** (st / 12.0) * (1.0 + p.jitter * _ctrl_noise(rng, n_c, 1))
    shimmer = 1.0 + 4.0 * p.jitter * _ctrl_noise(rng, n_c, 2)

    # to audio rate (linear interpolation of all tracks at once)
    pos = np.arange(n) * (CR / sr)
    i0 = pos.astype(np.int64)
    w = (pos - i0).astype(f32)
    tracks = np.vstack([env, f0, shimmer]).astype(f32)
    up = np.empty((len(tracks), n), dtype=f32)
    for j, tr in enumerate(tracks):
        up[j] = tr[i0]
        up[j] += (tr[i0 + 1] - up[j]) * w
    amp, voiced, fric, f0_n, shim = up

    # source: glottal flow derivative with shimmer, plus aspiration
    phase = np.cumsum(f0_n.astype(np.float64) / sr) % 1.0
    flow = _rosenberg_table(p.open_quotient)[(phase * PULSE_TABLE).astype(np.int64)]
    glottal = np.diff(flow, prepend=f32(0.0))
    glottal /= np.sqrt(np.mean(glottal[voiced > 0.5] ** 2)) + 1e-12
    breath = rng.standard_normal(n, dtype=f32) * f32(p.breath) * (f32(0.5) + flow)
    src = (glottal * shim + breath) * voiced * amp

    # formant trajectories: vowel targets at nucleus centres, interpolated per frame
    n_frames = int(np.ceil(n / HOP)) + 1
    ft = (np.arange(n_frames) * HOP + N_FFT / 2) / sr             # frame centres
    targets = np.array([VOWELS[v] for v in p.vowels]) * p.formant_scale
    formants = np.stack([np.interp(ft, centers, targets[:, j]) for j in range(4)], axis=1)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    gain = _formant_gain(freqs, np.minimum(formants, 0.45 * sr), BANDWIDTHS * (1.0 + 2.0 * p.breath))
    gain /= gain.max()
    speech = _stft_filter(src, gain)
    speech /= np.sqrt(np.mean(speech[amp > 0.3] ** 2)) + 1e-12

    # frication: noise high-passed by a second difference (+12 dB/octave) for unvoiced onsets
    if np.any(fric > 0.1):
        fr = np.diff(rng.standard_normal(n + 2, dtype=f32), n=2) * fric
        speech += fr * f32(0.15 / (np.sqrt(np.mean(fr[fric > 0.1] ** 2)) + 1e-12))

    y = speech * f32(10.0 ** (p.level_dbfs / 20.0))
    y += rng.standard_normal(n, dtype=f32) * f32(10.0 ** (-66.0 / 20.0))   # recording noise floor
    if np.max(np.abs(y)) > 0.9:                                  # soft limiter, as a hot recording would
        y = 0.9 * np.tanh(y / f32(0.9))
    return y.astype(np.float32)


def synthesize_utterance(*, emotion: str, speaker_profile: SpeakerProfile, text: str, seed: int,
                         sample_rate: int = 16000) -> np.ndarray:
    """One utterance as float32 samples at ``sample_rate``; same arguments, same samples."""
    rng = np.random.default_rng(seed)
    params = sample_params(emotion, speaker_profile, text, rng)
    return render(params, rng, sample_rate)
