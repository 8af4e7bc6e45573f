"""Augmented views (MTL-AUG): signal-level augmentations of each item, cached beside it in the store.

A *view spec list* such as ``clean,noise:snr=10,speed:0.9,pitch:2,reverb`` names the views to
extract. Each item becomes one row per view; a view's row has ``utt_id`` ``<utt_id>#<view>``
(the clean view keeps the original utt_id), ``source_utt_id`` (the clean item's utt_id),
``view`` (the canonical spec, e.g. ``noise:snr=10``), ``aug_type`` (clean, noise, speed, pitch,
reverb) and ``aug_params`` (JSON). Views share the source's speaker, label, split and text.

Grammar: comma-separated views ``NAME[:VALUE][:KEY=VALUE...]``; a bare number after a view
repeats that view with its main parameter set to the number, so ``noise:snr=20,10,5,0`` is four
noise views. Views and their parameters (defaults in brackets):

* ``clean`` — the decoded wave as it is;
* ``noise[:snr=DB][:kind=K]`` — additive noise at ``snr`` dB [10] (speech power over noise
  power, over the whole clip). ``kind`` is ``white``, ``pink``, ``brown`` (coloured noise shaped
  in the frequency domain) or ``babble`` (the sum of :data:`BABBLE_TALKERS` other utterances of the
  same corpus, from other speakers where there are any); without ``kind`` each item draws one;
* ``speed[:factor=F]`` — speed perturbation by resampling (tempo and pitch change together, as
  sox ``speed``) [0.9]; duration becomes duration / F;
* ``pitch[:semitones=S]`` — pitch shift by S semitones at constant duration
  (``torchaudio.functional.pitch_shift``) [2];
* ``reverb[:rt60=S]`` — convolution with a synthetic room impulse response: a direct-path
  impulse plus exponentially decaying Gaussian noise that falls 60 dB in ``rt60`` seconds (drawn
  from [0.2, 0.8] s per item unless given); the output keeps the input's length and RMS.

Every random choice (noise kind, noise seed, babble talkers and offsets, rt60, RIR seed) is
*sampled first* from a seed derived from ``(seed, utt_id, view)`` and recorded in
``aug_params``; :func:`apply_view` is then a pure function of the wave and those parameters,
so the same seed gives the same bytes, and a resumed extraction redoes a unit identically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import BadAudioError, ConfigError

CLEAN = "clean"
#: view name -> (main parameter, {parameter: default}); a default of None means "sampled per item"
VIEW_PARAMS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "clean": (None, {}),
    "noise": ("snr", {"snr": 10.0, "kind": None}),
    "speed": ("factor", {"factor": 0.9}),
    "pitch": ("semitones", {"semitones": 2.0}),
    "reverb": ("rt60", {"rt60": None}),
}
VIEW_NAMES = tuple(VIEW_PARAMS)
NOISE_KINDS = ("white", "pink", "brown", "babble")
BABBLE_TALKERS = 4
RT60_RANGE = (0.2, 0.8)
#: columns a store extracted with views adds to the item table
VIEW_COLUMNS = ("source_utt_id", "view", "aug_type", "aug_params")
_EXPECTED = ("expected a comma-separated view list such as clean,noise:snr=10,speed:0.9,pitch:2,reverb "
             f"(views: {', '.join(VIEW_NAMES)})")


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One view: its name (= ``aug_type``) and the parameters fixed by the spec."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def spec(self) -> str:
        """Canonical text, e.g. ``noise:snr=10`` (also the ``#`` suffix of the view's utt_id)."""
        return ":".join([self.name, *(f"{k}={_fmt(v)}" for k, v in self.params)])

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def __str__(self) -> str:
        return self.spec


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _number(text: str, what: str, got: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--views: expected a number for {what}, got {got!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--views: expected a finite number for {what}, got {got!r}")
    return value


def _make(name: str, given: dict[str, Any], token: str) -> ViewSpec:
    main, defaults = VIEW_PARAMS[name]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        keys = ", ".join(defaults) or "no parameters"
        raise ConfigError(f"--views: expected parameters of {name} among {keys}, got {unknown[0]!r} in {token!r}")
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        if key in given:
            raw = given[key]
            if key == "kind":
                if raw not in NOISE_KINDS:
                    raise ConfigError(f"--views: expected noise kind one of {', '.join(NOISE_KINDS)}, got {raw!r}")
                values[key] = raw
            else:
                values[key] = _number(raw, f"{name} {key}", token)
        elif default is not None:
            values[key] = float(default)
    if name == "speed" and not 0.25 <= values["factor"] <= 4.0:
        raise ConfigError(f"--views: expected a speed factor in [0.25, 4], got {token!r}")
    if name == "pitch" and abs(values["semitones"]) > 24:
        raise ConfigError(f"--views: expected a pitch shift within ±24 semitones, got {token!r}")
    if name == "reverb" and "rt60" in values and not 0.05 <= values["rt60"] <= 5.0:
        raise ConfigError(f"--views: expected a reverb rt60 in [0.05, 5] s, got {token!r}")
    order = [k for k in defaults if k in values]
    return ViewSpec(name, tuple((k, values[k]) for k in order))


def parse_views(text: str | Sequence[str] | None, *, option: str = "--views") -> list[ViewSpec]:
    """Parse a view spec list (see the module docstring); one-line ConfigError when malformed."""
    if text is None:
        return []
    raw = text if isinstance(text, str) else ",".join(str(t) for t in text)
    tokens = [t.strip() for t in raw.split(",")]
    if not raw.strip() or any(not t for t in tokens):
        raise ConfigError(f"{option}: {_EXPECTED}, got {raw!r}")
    out: list[ViewSpec] = []
    last: tuple[str, dict[str, Any]] | None = None
    for token in tokens:
        head, *rest = token.split(":")
        name = head.strip().lower()
        if name not in VIEW_PARAMS:
            if last is not None and not rest and VIEW_PARAMS[last[0]][0] is not None:
                _number(token, f"{last[0]} {VIEW_PARAMS[last[0]][0]}", token)  # a repeat: noise:snr=20,10,5
                name, given = last[0], {**last[1], VIEW_PARAMS[last[0]][0]: token}
                rest = None
            else:
                raise ConfigError(f"{option}: {_EXPECTED}, got {token!r}".replace("--views", option))
        if rest is not None:
            given = {}
            for i, part in enumerate(rest):
                key, sep, value = part.partition("=")
                if not sep:
                    if i or VIEW_PARAMS[name][0] is None:
                        raise ConfigError(f"{option}: expected KEY=VALUE or one leading value after {name}, got {token!r}")
                    key, value = VIEW_PARAMS[name][0], key
                given[key.strip().lower()] = value.strip()
        try:
            view = _make(name, given, token)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("--views", option)) from None
        if view in out:
            raise ConfigError(f"{option}: expected each view once, got {view.spec} twice")
        out.append(view)
        last = (name, given)
    return out


# -- seeds and sampling ------------------------------------------------------------------------

def view_seed(seed: int, utt_id: str, view: str) -> int:
    """A 63-bit seed from (seed, utt_id, view spec); stable across runs, processes and machines."""
    h = hashlib.sha256(f"{int(seed)}\0{utt_id}\0{view}".encode())
    return int.from_bytes(h.digest()[:8], "little") & 0x7FFFFFFFFFFFFFFF


def sample_params(view: ViewSpec, utt_id: str, speaker: str, *, seed: int, pool: pd.DataFrame | None = None) -> dict[str, Any]:
    """The view's full parameters for one item: the spec's own plus every random choice, drawn now.

    ``pool`` (utt_id, path, speaker of the corpus) supplies babble talkers: other utterances, of
    other speakers where the corpus has any."""
    rng = np.random.default_rng(view_seed(seed, utt_id, view.spec))
    params: dict[str, Any] = dict(view.params)
    if view.name == "noise":
        kind = params.get("kind") or NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        params["kind"] = kind
        params["noise_seed"] = int(rng.integers(2**31))
        if kind == "babble":
            if pool is None or len(pool) < 2:
                params["kind"] = "pink"  # no other utterance to build babble from
            else:
                others = pool[pool["utt_id"] != utt_id]
                other_spk = others[others["speaker"] != speaker]
                cand = other_spk if len(other_spk) else others
                pick = np.sort(rng.choice(len(cand), size=min(BABBLE_TALKERS, len(cand)), replace=False))
                params["babble"] = [{"utt_id": str(cand["utt_id"].iloc[i]), "path": str(cand["path"].iloc[i]),
                                     "offset": round(float(rng.random()), 6)} for i in pick]
    elif view.name == "reverb":
        if "rt60" not in params:
            params["rt60"] = round(float(rng.uniform(*RT60_RANGE)), 4)
        params["rir_seed"] = int(rng.integers(2**31))
    return params


def expand_plan(items: pd.DataFrame, views: Sequence[ViewSpec], *, seed: int) -> pd.DataFrame:
    """One row per (item, view), in item order and view order within an item (see the module docstring)."""
    if not views:
        return items
    pool = items[["utt_id", "path", "speaker"]].astype(str)
    blocks = []
    for view in views:
        part = items.copy()
        src = part["utt_id"].astype(str)
        params = [sample_params(view, u, s, seed=seed, pool=pool) for u, s in zip(src, part["speaker"].astype(str))]
        if view.name != CLEAN:
            part["utt_id"] = src + "#" + view.spec
        part["source_utt_id"] = src.to_numpy()
        part["view"] = view.spec
        part["aug_type"] = view.name
        part["aug_params"] = [json.dumps(p, sort_keys=True) for p in params]
        if view.name == "speed" and "duration_s" in part:
            part["duration_s"] = part["duration_s"] / float(view.param_dict["factor"])
        part["_order"] = np.arange(len(part)) * len(views) + len(blocks)
        blocks.append(part)
    out = pd.concat(blocks, ignore_index=True).sort_values("_order", kind="stable").drop(columns="_order")
    if out["utt_id"].duplicated().any():
        dup = out["utt_id"][out["utt_id"].duplicated()].iloc[0]
        raise ConfigError(f"--views: expected unique utt_ids after expanding views, got {dup!r} twice; "
                          "a source utt_id already contains '#<view>'")
    return out.reset_index(drop=True)


# -- signal operations -------------------------------------------------------------------------

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


# -- reading views back ------------------------------------------------------------------------

def has_views(items: pd.DataFrame) -> bool:
    return "aug_type" in items.columns


def view_column(items: pd.DataFrame) -> pd.Series:
    """Each row's view spec (``clean`` for stores extracted without views)."""
    if "view" in items.columns:
        return items["view"].astype(str)
    return pd.Series(CLEAN, index=items.index)


def source_column(items: pd.DataFrame) -> pd.Series:
    """Each row's source utt_id (its own utt_id for stores extracted without views)."""
    if "source_utt_id" in items.columns:
        return items["source_utt_id"].astype(str)
    return items["utt_id"].astype(str)


def clean_mask(items: pd.DataFrame) -> np.ndarray:
    """Rows of the clean view; every row when the store has no clean rows (or no views at all)."""
    if "aug_type" not in items.columns:
        return np.ones(len(items), dtype=bool)
    mask = (items["aug_type"].astype(str) == CLEAN).to_numpy()
    return mask if mask.any() else np.ones(len(items), dtype=bool)


def present_specs(items: pd.DataFrame) -> list[str]:
    """View specs present in an item table, in first-seen order."""
    return list(dict.fromkeys(view_column(items).tolist()))


def require_views(items: pd.DataFrame, text: str | Sequence[str], *, option: str, store: str = "the store") -> list[ViewSpec]:
    """Parse ``text`` and check that the item table holds every view; one-line ConfigError otherwise."""
    specs = parse_views(text, option=option)
    have = present_specs(items)
    missing = [v.spec for v in specs if v.spec not in have]
    if missing:
        want = ",".join(dict.fromkeys([*have, *missing]))
        raise ConfigError(f"{option}: expected views present in {store} ({', '.join(have)}), got {', '.join(missing)}, "
                          f"which it lacks; features are cached, so re-extract with --views {want}")
    return specs
