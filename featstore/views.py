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
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError

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


# -- signal operations: featstore.view_ops (re-exported here) ----------------------------------

def __getattr__(name: str):
    # the signal operations live in view_ops (which imports this module's constants); imported
    # on first use so that neither module needs the other at import time
    from mirage.featstore import view_ops

    if name in view_ops.__all__:
        return getattr(view_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
