"""A fold's training and test rows, in memory: the real store read once through the Dask
block loader, plus synthetic rows, standardised with the real training rows' statistics.

Normalisation (``--normalise``, :data:`NORMALISATIONS`):

* ``global`` (the default, inductive) — z-score every feature with the fold's real training
  rows' mean and std (:func:`assemble`); nothing about a test speaker is used;
* ``speaker`` — first z-score the audio embedding h of every speaker with that speaker's own
  mean and std (:func:`normalise_speakers`), then the ``global`` step on top. Training speakers
  use their training rows; the test speaker uses its own test rows' features — never their
  labels. That is a *transductive* step: at test time a speaker's unlabelled clips are pooled
  before any is classified (as in speaker-adaptive SER); ``global`` is the inductive choice.
  Text embeddings t (multimodal) carry no speaker identity and are left as they are;
* ``none`` — raw features, no standardisation at all.

``--mode ser`` uses h (the audio embedding). ``--mode multimodal`` uses [h; t]; with
synthetic shards it trains on the combinations (h, t) (real pairs), (ĥ, t) (generated
audio with its conditioning text), and, when the shards carry t' (the text-space
prediction of ĥ), (ĥ, t') and (h, t'). For (h, t') the real h is that of the item whose
text conditioned the sample when the shard records it and that item is in the training
fold, else a random training item of the same label (seeded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.featstore.standardize import Standardizer, floored_scale
from mirage.train.loaders import Source, cached_store, load_rows, store_token
from mirage.train.synthetic import SyntheticData

log = logging.getLogger(__name__)

MODES = ("ser", "multimodal")
NORMALISATIONS = ("none", "global", "speaker")
DEFAULT_NORMALISE = "global"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_normalise(normalise: str | None) -> str:
    value = DEFAULT_NORMALISE if normalise is None else str(normalise).lower()
    if value not in NORMALISATIONS:
        raise ConfigError(f"--normalise: expected one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
    return value


@dataclass
class RealData:
    url: str
    items: pd.DataFrame          # usable items in row order
    labels: list[str]            # sorted label set = class indices
    y: np.ndarray
    h: np.ndarray
    t: np.ndarray | None
    metadata: dict[str, Any]
    storage_options: dict[str, Any] | None = None
    layer: int | str | None = None        # see train.layers; None = the store's audio array
    layers: np.ndarray | None = None      # (N, S, D) every hidden state, kept for --layer weighted
    layer_weights: np.ndarray | None = None  # the fold's learned weights (--layer weighted)
    speaker_pool: Standardizer | None = None  # --normalise speaker: the training fold's pooled speaker statistics

    @property
    def token(self) -> str | None:
        return self.metadata.get("content_hash") or self.metadata.get("plan_fingerprint")

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def audio_dim(self) -> int:
        return int(self.h.shape[1])

    def features(self, idx: np.ndarray) -> np.ndarray:
        if self.t is None:
            return self.h[idx]
        return np.concatenate([self.h[idx], self.t[idx]], axis=1)


def store_columns(store, mode: str) -> tuple[str, ...]:
    check_mode(mode)
    if not store.has("audio"):
        raise ConfigError(f"{store.url}: expected an audio feature array, got arrays {store.array_names}; extract audio features first")
    if mode == "multimodal":
        if not store.has("text"):
            raise ConfigError(f"{store.url}: --mode multimodal expected a text array, got arrays {store.array_names}; "
                              "extract with a text encoder (featstore extract --text minilm) or use --mode ser")
        return ("audio", "text")
    return ("audio",)


def real_items(store) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """The store's labelled items in row order, the sorted label set and int labels.

    Unlabelled items (empty label, see :func:`featstore.items.labelled_mask`) are left out:
    every supervised loss ignores them (``--method mtl-aug`` reads them itself, see train.mtl)."""
    from mirage.featstore.items import labelled_mask

    items = store.items.sort_values("row", kind="stable").reset_index(drop=True)
    if "label" in items.columns and not items.empty:
        keep = labelled_mask(items["label"])
        if not keep.all():
            log.info("%s: %d unlabelled items left out of supervised training", store.url, int((~keep).sum()))
            items = items[keep].reset_index(drop=True)
    if "label" not in items.columns or items.empty:
        raise ConfigError(f"{store.url}: expected labelled items, got {len(items)} items and columns {list(items.columns)}")
    items["label"] = items["label"].astype(str)
    labels = sorted(items["label"].unique().tolist())
    if len(labels) < 2:
        raise ConfigError(f"{store.url}: expected at least 2 emotion labels, got {labels}")
    y = items["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy(np.int64)
    return items, labels, y


def load_real(url: str, *, mode: str = "ser", storage_options: dict[str, Any] | None = None,
              scheduler: str = "threads", client=None, layer: int | str | None = None) -> RealData:
    """Every usable item of the real store, read with one Dask task per block.

    ``layer`` (see :mod:`train.layers`) reads ``audio_layers`` instead of ``audio``."""
    from mirage.train.layers import LAYERS_ARRAY, check_layer, fixed_view

    store = cached_store(url, storage_options)
    from mirage.featstore.kinds import require_features

    require_features(store)
    cols = store_columns(store, mode)
    layer = check_layer(layer, store)
    if layer is not None:
        cols = (LAYERS_ARRAY, *cols[1:])
    items, labels, y = real_items(store)
    x = load_rows(Source(store.url, cols, items["row"].to_numpy(), y, storage_options=storage_options,
                         token=store_token(store)),
                  scheduler=scheduler, client=client)
    from mirage.train.synthetic import check_finite

    check_finite(x, url=store.url, utt_ids=items["utt_id"].to_numpy())
    da = store.row_width(cols[0])
    h, t = (x, None) if mode == "ser" else (x[:, :da], x[:, da:])
    layers = None
    if layer is not None:
        layers = h.reshape(len(h), *store.row_shape(LAYERS_ARRAY))
        h = layers[:, -1] if layer == "weighted" else fixed_view(layers, layer)
    return RealData(store.url, items, labels, y, np.ascontiguousarray(h), None if t is None else np.ascontiguousarray(t),
                    dict(store.metadata), storage_options, layer=layer, layers=layers if layer == "weighted" else None)


def for_fold(real: RealData, train_idx: np.ndarray, *, seed: int) -> RealData:
    """``real`` as one fold sees it: with ``--layer weighted`` the layer mix is learned on the
    fold's training rows only and applied to every row; otherwise ``real`` itself."""
    if real.layer != "weighted":
        return real
    from dataclasses import replace

    from mirage.train.layers import fit_layer_weights, weighted_view

    weights, mean, scale = fit_layer_weights(real.layers[train_idx], real.y[train_idx], len(real.labels), seed=seed)
    return replace(real, h=weighted_view(real.layers, weights, mean, scale), layer_weights=weights)


def speaker_statistics(h: np.ndarray, speakers: np.ndarray, idx: np.ndarray) -> dict[str, Standardizer]:
    """Per speaker among ``idx``, the mean/std of that speaker's rows (``idx`` only)."""
    idx = np.asarray(idx, dtype=np.int64)
    spk = speakers[idx]
    return {str(s): Standardizer.fit(h[idx[spk == s]]) for s in np.unique(spk)}


def normalise_speakers(real: RealData, train_idx: np.ndarray, test_idx: np.ndarray) -> RealData:
    """``real`` with each speaker's audio rows z-scored by that speaker's own statistics.

    Training speakers' statistics come from their rows in ``train_idx``; a test speaker's from
    its rows in ``test_idx`` — its unlabelled features, a transductive step (see the module
    docstring). Rows in neither set are left as they are (no fold uses them). ``speaker_pool``
    is set to the training fold's pooled per-speaker statistics: the mean of the training rows
    and the within-speaker std (root of the row-weighted mean of the per-speaker variances) —
    the map for rows of no known speaker, e.g. synthetic rows generated in the store's raw space.
    """
    from dataclasses import replace

    speakers = real.items["speaker"].astype(str).to_numpy()
    h = np.array(real.h, dtype=np.float32, copy=True)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    var, n = np.zeros(h.shape[1], np.float64), 0
    for part in (train_idx, np.asarray(test_idx, dtype=np.int64)):
        stats = speaker_statistics(real.h, speakers, part)
        for spk, st in stats.items():
            rows = part[speakers[part] == spk]
            h[rows] = st.transform(real.h[rows])
            if part is train_idx:
                x = np.asarray(real.h[rows], np.float64)
                var += ((x - x.mean(axis=0)) ** 2).sum(axis=0)
                n += len(rows)
    x_mean = np.asarray(real.h[train_idx], np.float64).mean(axis=0)
    pool = Standardizer(x_mean.astype(np.float32), floored_scale(x_mean, np.sqrt(var / max(n, 1))).astype(np.float32))
    return replace(real, h=h, speaker_pool=pool)


def prepare_fold(real: RealData, train_idx: np.ndarray, test_idx: np.ndarray, normalise: str) -> RealData:
    """``real`` as the fold's classifier sees it before :func:`assemble` (speaker step when asked)."""
    if check_normalise(normalise) == "speaker":
        return normalise_speakers(real, train_idx, test_idx)
    return real


@dataclass
class TrainingSet:
    """Standardised rows of one fold. ``y_syn`` is int labels or (n, K) soft labels."""

    x_real: np.ndarray
    y_real: np.ndarray
    x_syn: np.ndarray
    y_syn: np.ndarray
    scaler: Standardizer
    combos: dict[str, int] = field(default_factory=dict)
    speakers_real: np.ndarray | None = None  # speaker of each real row (for --synthetic-speakers mix)

    @property
    def n_real(self) -> int:
        return len(self.x_real)

    @property
    def n_syn(self) -> int:
        return len(self.x_syn)


def _paired_real(real: RealData, train_idx: np.ndarray, synth: SyntheticData, rng: np.random.Generator) -> np.ndarray:
    """Positions (into the real items) of the real h paired with each synthetic t'."""
    out = np.full(synth.n, -1, dtype=np.int64)
    if synth.text_source is not None:
        pos = pd.Series(np.arange(real.n), index=real.items["utt_id"].astype(str).to_numpy())
        in_train = np.zeros(real.n, dtype=bool)
        in_train[train_idx] = True
        found = pos.reindex(synth.text_source).to_numpy()
        ok = ~np.isnan(found)
        ok[ok] = in_train[found[ok].astype(np.int64)]
        out[ok] = found[ok].astype(np.int64)
    y_train = real.y[train_idx]
    for c in np.unique(synth.y[out < 0]):
        need = np.flatnonzero((out < 0) & (synth.y == c))
        pool = train_idx[y_train == c]
        if len(pool):
            out[need] = rng.choice(pool, size=len(need))
    return out


def assemble(real: RealData, train_idx: np.ndarray, synth: SyntheticData | None, *, mode: str,
             rng: np.random.Generator, normalise: str = DEFAULT_NORMALISE) -> TrainingSet:
    """The fold's standardised training rows (real + every applicable synthetic combination).

    ``normalise="none"`` keeps the raw features (an identity scaler); ``global`` and
    ``speaker`` standardise with the real training rows' statistics (the speaker step, when
    asked, is :func:`prepare_fold`'s, done before). Synthetic rows must already be in
    ``real``'s space."""
    x_real = real.features(train_idx)
    scaler = Standardizer.identity(x_real.shape[1]) if check_normalise(normalise) == "none" else Standardizer.fit(x_real)
    n_real = len(train_idx)
    spk = real.items["speaker"].astype(str).to_numpy()[train_idx] if "speaker" in real.items.columns else None
    if synth is None or synth.n == 0:
        dim = x_real.shape[1]
        combos = {"h+t": n_real} if mode == "multimodal" else {"h": n_real}
        return TrainingSet(scaler.transform(x_real), real.y[train_idx], np.zeros((0, dim), np.float32),
                           np.zeros(0, np.int64), scaler, combos, spk)
    if mode == "ser":
        return TrainingSet(scaler.transform(x_real), real.y[train_idx], scaler.transform(synth.h), synth.y, scaler,
                           {"h": n_real, "hhat": synth.n}, spk)
    parts, ys, combos = [np.concatenate([synth.h, synth.t], axis=1)], [synth.y], {"h+t": n_real, "hhat+t": synth.n}
    if synth.t_pred is not None:
        parts.append(np.concatenate([synth.h, synth.t_pred], axis=1))
        ys.append(synth.y)
        combos["hhat+t_pred"] = synth.n
        pair = _paired_real(real, train_idx, synth, rng)
        ok = pair >= 0
        parts.append(np.concatenate([real.h[pair[ok]], synth.t_pred[ok]], axis=1))
        ys.append(synth.y[ok])
        combos["h+t_pred"] = int(ok.sum())
    return TrainingSet(scaler.transform(x_real), real.y[train_idx], scaler.transform(np.concatenate(parts)),
                       np.concatenate(ys), scaler, combos, spk)
