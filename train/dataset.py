"""A fold's training and test rows, in memory: the real store read once through the Dask
block loader, plus synthetic rows, standardised with the real training rows' statistics.

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

from featstore.errors import ConfigError
from train.classifier import Standardizer
from train.loaders import Source, cached_store, load_rows, store_token
from train.synthetic import SyntheticData

log = logging.getLogger(__name__)

MODES = ("ser", "multimodal")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


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
    items = store.items.sort_values("row", kind="stable").reset_index(drop=True)
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
    from train.layers import LAYERS_ARRAY, check_layer, fixed_view

    store = cached_store(url, storage_options)
    cols = store_columns(store, mode)
    layer = check_layer(layer, store)
    if layer is not None:
        cols = (LAYERS_ARRAY, *cols[1:])
    items, labels, y = real_items(store)
    x = load_rows(Source(store.url, cols, items["row"].to_numpy(), y, storage_options=storage_options,
                         token=store_token(store)),
                  scheduler=scheduler, client=client)
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

    from train.layers import fit_layer_weights, weighted_view

    weights, mean, scale = fit_layer_weights(real.layers[train_idx], real.y[train_idx], len(real.labels), seed=seed)
    return replace(real, h=weighted_view(real.layers, weights, mean, scale), layer_weights=weights)


@dataclass
class TrainingSet:
    """Standardised rows of one fold. ``y_syn`` is int labels or (n, K) soft labels."""

    x_real: np.ndarray
    y_real: np.ndarray
    x_syn: np.ndarray
    y_syn: np.ndarray
    scaler: Standardizer
    combos: dict[str, int] = field(default_factory=dict)

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
             rng: np.random.Generator) -> TrainingSet:
    """The fold's standardised training rows (real + every applicable synthetic combination)."""
    x_real = real.features(train_idx)
    scaler = Standardizer.fit(x_real)
    n_real = len(train_idx)
    if synth is None or synth.n == 0:
        dim = x_real.shape[1]
        combos = {"h+t": n_real} if mode == "multimodal" else {"h": n_real}
        return TrainingSet(scaler.transform(x_real), real.y[train_idx], np.zeros((0, dim), np.float32),
                           np.zeros(0, np.int64), scaler, combos)
    if mode == "ser":
        return TrainingSet(scaler.transform(x_real), real.y[train_idx], scaler.transform(synth.h), synth.y, scaler,
                           {"h": n_real, "hhat": synth.n})
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
                       np.concatenate(ys), scaler, combos)
