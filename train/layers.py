"""Which encoder layer the classifier sees: one hidden state, their mean, or a learned mix.

Stores extracted with ``--audio-layer all`` hold ``audio_layers`` (N, L+1, D), every hidden
state pooled. ``--layer`` picks from it:

- ``K`` (0..L): hidden state K (0 = the encoder's input embeddings, L = its output);
- ``mean``: the plain average of every state;
- ``weighted``: SUPERB's weighted sum — softmax weights over the per-layer z-scored states,
  learned jointly with a linear probe on the *training fold only* (full-batch L-BFGS, a fixed
  seed), then frozen; the fold's features are that weighted sum. The test speakers never
  influence the weights, and ``metrics.json`` lists each fold's weights.
"""

from __future__ import annotations

import numpy as np

from mirage.featstore.standardize import floored_scale
from mirage.featstore.errors import ConfigError

LAYERS_ARRAY = "audio_layers"
MODES = ("mean", "weighted")


def parse_layer(layer: int | str | None) -> int | str | None:
    """None (the store's ``audio``), an int, or one of :data:`MODES`."""
    if layer is None or (isinstance(layer, int) and not isinstance(layer, bool)):
        return layer
    text = str(layer).strip().lower()
    if text in MODES:
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--layer: expected a layer index or one of {', '.join(MODES)}, got {layer!r}") from None


def check_layer(layer: int | str | None, store) -> int | str | None:
    """Validate ``layer`` against the store's ``audio_layers``."""
    layer = parse_layer(layer)
    if layer is None:
        return None
    if not store.has(LAYERS_ARRAY):
        raise ConfigError(f"{store.url}: --layer expected an {LAYERS_ARRAY} array, got arrays {store.array_names}; "
                          "extract with `featstore extract --audio-layer all` to keep every layer")
    n_states = store.row_shape(LAYERS_ARRAY)[0]
    if isinstance(layer, int) and not 0 <= layer < n_states:
        raise ConfigError(f"--layer: expected a layer in 0..{n_states - 1} (this store keeps {n_states} states), got {layer}")
    return layer


def fixed_view(layers: np.ndarray, layer: int | str) -> np.ndarray:
    """(N, D) features for an int layer or ``mean``; ``weighted`` needs :func:`fit_layer_weights`."""
    if layer == "mean":
        return np.ascontiguousarray(layers.mean(axis=1, dtype=np.float64).astype(np.float32))
    return np.ascontiguousarray(layers[:, int(layer)])


def fit_layer_weights(layers: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int, l2: float = 1e-3,
                      max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax layer weights learned with a linear probe on (training) rows ``layers`` (n, S, D).

    Returns (weights (S,), per-layer mean (S, D), per-layer scale (S, D)) — the statistics
    are those of the same rows, so :func:`weighted_view` applies them to any row."""
    import torch

    from mirage.train.classifier import seeded

    x = np.asarray(layers, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = floored_scale(mean, x.std(axis=0))
    with seeded(seed, 1):
        z = torch.from_numpy(((x - mean) / scale).astype(np.float32))
        target = torch.from_numpy(np.array(y, dtype=np.int64))
        n_states, dim = z.shape[1], z.shape[2]
        logits_w = torch.zeros(n_states, requires_grad=True)
        head = torch.nn.Linear(dim, n_classes)
        with torch.no_grad():
            head.weight.copy_(0.01 * torch.randn(head.weight.shape))
            head.bias.zero_()
        params = [logits_w, *head.parameters()]
        opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            mix = torch.einsum("s,nsd->nd", torch.softmax(logits_w, 0), z)
            loss = torch.nn.functional.cross_entropy(head(mix), target) + 0.5 * l2 * head.weight.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        weights = torch.softmax(logits_w.detach(), 0).numpy().astype(np.float64)
    if not np.all(np.isfinite(weights)):
        raise ConfigError("--layer weighted: the layer weights did not converge (NaN); use --layer K or mean")
    return weights, mean, scale


def weighted_view(layers: np.ndarray, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Σ_l w_l · z-scored state l, for every row of ``layers``."""
    z = (np.asarray(layers, dtype=np.float64) - mean) / scale
    return np.ascontiguousarray(np.einsum("s,nsd->nd", weights, z).astype(np.float32))
