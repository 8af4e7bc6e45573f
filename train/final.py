"""A trained classifier as a product: ``train fit --final`` saves it, ``train predict`` uses it.

The final model is trained on every labelled item of the store, with the same classifier
settings, layer choice and standardisation as the evaluated folds (seed derived from
(seed, "classifier", "final")). It is saved as a folder:

- ``weights.safetensors``: the classifier's tensors plus ``scaler.mean`` / ``scaler.scale``
  (and ``layers.weights`` / ``layers.mean`` / ``layers.scale`` for ``--layer weighted``);
- ``model.json``: ``kind: "mirage-classifier"``, the classifier settings, label names, mode,
  layer, the store's extractor configs, the store's content hash, the SHA-256 of the weights
  file and a ``fingerprint`` of (settings, store content hash, tool version).

:func:`predict` refuses a store whose extractor configs differ from the model's (features
from another encoder, layer or window would be silently meaningless), and checks the
weights file against its recorded SHA-256 before loading it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

KIND = "mirage-classifier"
FORMAT_VERSION = 1
MODEL_DIR = "model"
WEIGHTS = "weights.safetensors"
CONFIG = "model.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train_final(real, *, cfg, mode: str, layer, normalise: str, seed: int, out: str,
                storage_options: dict[str, Any] | None = None) -> str:
    """Fit on every labelled row of ``real`` (a :class:`train.dataset.RealData`) and save to
    ``out/model``; returns that folder's URL."""
    import torch
    from safetensors.torch import save

    from mirage.featstore.store.location import Location
    from mirage.featstore.store.base import tool_version
    from mirage.featstore.standardize import Standardizer
    from mirage.train.classifier import fit_in_memory
    from mirage.train.layers import fit_layer_weights, weighted_view
    from mirage.train.seeds import derive_seed

    if normalise == "speaker":
        raise ConfigError("--final: expected --normalise global or none (a saved model cannot know the speaker statistics "
                          "of the data it will see), got --normalise speaker")
    every = np.arange(real.n)
    layer_fit = None
    if real.layer == "weighted":
        layer_fit = fit_layer_weights(real.layers, real.y, len(real.labels), seed=derive_seed(seed, "layers", "final"))
        real = replace(real, h=weighted_view(real.layers, *layer_fit))
    x = real.features(every)
    scaler = (Standardizer.identity(x.shape[1]) if normalise == "none"
              else Standardizer.fit(x))
    model = fit_in_memory(scaler.transform(x), real.y, np.ones(real.n, np.float32), n_classes=len(real.labels), cfg=cfg,
                          seed=derive_seed(seed, "classifier", "final"))
    tensors = {f"classifier.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors["scaler.mean"] = torch.from_numpy(np.ascontiguousarray(scaler.mean, np.float32))
    tensors["scaler.scale"] = torch.from_numpy(np.ascontiguousarray(scaler.scale, np.float32))
    if layer_fit is not None:
        w, mean, scale = layer_fit
        tensors["layers.weights"] = torch.from_numpy(w.astype(np.float64))
        tensors["layers.mean"] = torch.from_numpy(mean.astype(np.float64))
        tensors["layers.scale"] = torch.from_numpy(scale.astype(np.float64))
    blob = save(tensors, metadata={"format": "pt"})
    settings = {"classifier": cfg.to_json(), "mode": mode, "layer": layer, "normalise": normalise, "seed": int(seed),
                "labels": list(real.labels), "in_dim": int(x.shape[1])}
    config = {
        "kind": KIND, "format_version": FORMAT_VERSION, **settings,
        "extractors": real.metadata.get("extractors"), "store": real.url,
        "store_content_hash": real.metadata.get("content_hash"), "n_train_items": int(real.n),
        "tool_version": tool_version(), "weights_sha256": _sha256(blob),
        "fingerprint": _sha256(json.dumps({**settings, "store": real.metadata.get("content_hash"),
                                           "tool": tool_version()}, sort_keys=True, default=str).encode())[:16],
    }
    loc = Location(f"{out.rstrip('/')}/{MODEL_DIR}", storage_options)
    loc.write_bytes(WEIGHTS, blob)
    loc.write_bytes(CONFIG, json.dumps(config, sort_keys=True, indent=1).encode())  # last: marks the model complete
    log.info("final model (%d items) -> %s", real.n, loc.url)
    return loc.url


@dataclass
class FinalModel:
    config: dict[str, Any]
    tensors: dict[str, Any]
    url: str

    @property
    def labels(self) -> list[str]:
        return list(self.config["labels"])

    def module(self):
        from mirage.train.classifier import ClassifierConfig, build_model

        cfg = ClassifierConfig.from_kwargs(**self.config["classifier"])
        net = build_model(cfg, int(self.config["in_dim"]), len(self.labels))
        net.load_state_dict({k[len("classifier."):]: v for k, v in self.tensors.items() if k.startswith("classifier.")})
        return net.eval()

    def features(self, audio: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
        """Rows in the classifier's input space: layer choice, then standardisation."""
        from mirage.train.layers import fixed_view, weighted_view

        layer = self.config.get("layer")
        if layer is not None:
            if audio.ndim != 3:
                raise ConfigError(f"{self.url}: the model reads hidden layers (--layer {layer}); expected features with "
                                  "every layer (--audio-layer all), got one vector per item")
            if layer == "weighted":
                t = self.tensors
                audio = weighted_view(audio, t["layers.weights"].numpy(), t["layers.mean"].numpy(), t["layers.scale"].numpy())
            else:
                audio = fixed_view(audio, layer)
        x = audio if text is None else np.concatenate([audio, text], axis=1)
        mean, scale = self.tensors["scaler.mean"].numpy(), self.tensors["scaler.scale"].numpy()
        if x.shape[1] != len(mean):
            raise ConfigError(f"{self.url}: expected {len(mean)} features per item, got {x.shape[1]}")
        return ((x - mean) / scale).astype(np.float32)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        import torch

        from mirage.train.classifier import seeded

        net = self.module()
        with seeded(0, 1), torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(np.ascontiguousarray(x, np.float32))), dim=1).numpy()


def load_final(url: str, storage_options: dict[str, Any] | None = None) -> FinalModel:
    """Read and verify a saved final model (a folder, or the training run that holds one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from mirage.featstore.store.location import Location

    loc = Location(url, storage_options)
    if not loc.exists(CONFIG) and loc.exists(f"{MODEL_DIR}/{CONFIG}"):
        loc = Location(f"{loc.url.rstrip('/')}/{MODEL_DIR}", storage_options)
    if not loc.exists(CONFIG):
        raise ConfigError(f"--model {url}: expected a classifier saved by `train fit --final` ({CONFIG}), got none")
    try:
        config = json.loads(loc.read_bytes(CONFIG))
    except ValueError:
        raise CheckpointError(f"--model {loc.url}: {CONFIG} is not valid JSON; retrain with `train fit --final`") from None
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise ConfigError(f"--model {loc.url}: expected a {KIND} folder, got kind {config.get('kind') if isinstance(config, dict) else None!r}")
    if not loc.exists(WEIGHTS):
        raise CheckpointError(f"--model {loc.url}: {WEIGHTS} is missing; retrain with `train fit --final`")
    blob = loc.read_bytes(WEIGHTS)
    if _sha256(blob) != config.get("weights_sha256"):
        raise CheckpointError(f"--model {loc.url}: {WEIGHTS} does not match the SHA-256 recorded in {CONFIG} "
                              "(damaged or replaced); retrain with `train fit --final`")
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"--model {loc.url}: {WEIGHTS} cannot be read ({exc})") from None
    return FinalModel(config, tensors, loc.url)


def _norm(cfg: dict | None) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def check_extractors(model: FinalModel, store) -> None:
    kinds = ("audio",) if model.config["mode"] == "ser" else ("audio", "text")
    want = model.config.get("extractors") or {}
    got = store.metadata.get("extractors") or {}
    for kind in kinds:
        a, b = want.get(kind) or {}, got.get(kind) or {}
        if _norm(a) != _norm(b):
            keys = sorted(k for k in set(a) | set(b) if _norm(a.get(k)) != _norm(b.get(k)))
            raise ConfigError(f"{store.url}: expected {kind} features made like the model's, got other extractor settings "
                              f"({', '.join(keys)} differ: model {[a.get(k) for k in keys]}, store {[b.get(k) for k in keys]}); "
                              "re-extract the store with the model's settings")


def predict_store(model_url: str, store_url: str, out: str, *, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per-item predictions for every usable item of a store; written to ``out`` (Parquet)."""
    from mirage.featstore.store import open_store
    from mirage.train.loaders import Source, load_rows, store_token

    model = load_final(model_url, storage_options)
    store = open_store(store_url, storage_options=storage_options)
    from mirage.featstore.kinds import require_features

    require_features(store)
    check_extractors(model, store)
    layer = model.config.get("layer")
    audio_col = "audio_layers" if layer is not None else "audio"
    if not store.has(audio_col):
        raise ConfigError(f"{store.url}: expected an {audio_col} array for this model, got arrays {store.array_names}")
    items = store.items.sort_values("row", kind="stable").reset_index(drop=True)
    rows = items["row"].to_numpy()
    audio = load_rows(Source(store.url, (audio_col,), rows, np.zeros(len(rows)), storage_options=storage_options,
                             token=store_token(store)))
    if layer is not None:
        audio = audio.reshape(len(rows), *store.row_shape(audio_col))
    text = None
    if model.config["mode"] == "multimodal":
        text = load_rows(Source(store.url, ("text",), rows, np.zeros(len(rows)), storage_options=storage_options,
                                token=store_token(store)))
    keep = [c for c in ("utt_id", "speaker", "label", "path", "view") if c in items.columns]
    return write_predictions(model, items[keep], model.probabilities(model.features(audio, text)), out, storage_options)


def predict_audio(model_url: str, paths: Sequence[str], out: str, *, storage_options: dict[str, Any] | None = None,
                  device: str = "cpu", batch_size: int = 8) -> pd.DataFrame:
    """Predictions straight from audio files, embedded with the extractor settings the model was trained on."""
    from mirage.featstore import audio as audio_io
    from mirage.featstore.errors import BadAudioError
    from mirage.featstore.extract import length_batches
    from mirage.featstore.extractors import extractor_from_config

    from mirage.featstore.device import check_device

    check_device(device)
    model = load_final(model_url, storage_options)
    if model.config["mode"] != "ser":
        raise ConfigError("--audio: expected a model trained with --mode ser (files carry no transcript), got multimodal")
    cfg = (model.config.get("extractors") or {}).get("audio")
    if not cfg:
        raise ConfigError(f"--model {model.url}: it records no audio extractor; predict from a store instead")
    ex = extractor_from_config(cfg, device=device)
    ex.load()
    waves = []
    for p in paths:
        try:
            waves.append(audio_io.load(p, ex.sample_rate))
        except BadAudioError as exc:
            raise ConfigError(f"--audio {p}: {exc}") from None
    dims = ex.layer_states_shape
    audio = np.zeros((len(waves), *(dims or (ex.dim,))), np.float32)
    for batch in length_batches({i: len(w) for i, w in enumerate(waves)}, batch_size):
        audio[batch] = ex.embed([waves[i] for i in batch])
    items = pd.DataFrame({"path": list(paths)})
    return write_predictions(model, items, model.probabilities(model.features(audio)), out, storage_options)


def write_predictions(model: FinalModel, items: pd.DataFrame, probs: np.ndarray, out: str,
                      storage_options: dict[str, Any] | None) -> pd.DataFrame:
    from mirage.featstore.store.location import Location

    labels = model.labels
    table = items.reset_index(drop=True).copy()
    table["pred"] = [labels[i] for i in probs.argmax(axis=1)]
    for j, lab in enumerate(labels):
        table[f"prob_{lab}"] = probs[:, j].astype(np.float32)
    if not str(out).endswith(".parquet"):
        raise ConfigError(f"--out: expected a .parquet path, got {out!r}")
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    parent, _, name = str(out).rstrip("/").rpartition("/")
    Location(parent or ".", storage_options).write_bytes(name, buf.getvalue())
    return table
