"""Shared plumbing of the Hugging Face backends: where a model comes from, offline rules,
friendly errors, layer checks and a content fingerprint for local folders."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from mirage.featstore.errors import ConfigError, MirageError

BUILTIN_HINT = {"audio": "logmel, egemaps", "text": "minilm, none"}
_BIG_FILE = 1 << 20


def is_local(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def normalise_model(model: str) -> str:
    """Absolute path for a local folder (so a stored config works from any cwd), else the id."""
    return str(Path(model).expanduser().resolve()) if is_local(model) else model


def offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def hub_kwargs(model: str, revision: str | None) -> dict[str, Any]:
    """from_pretrained kwargs: never touch the network for a local folder or when offline."""
    if is_local(model):
        return {"local_files_only": True}
    return {"revision": revision, "local_files_only": offline()}


def looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", "\\")) or (len(model) > 1 and model[1] == ":")


def missing_model(model: str, kind: str, exc: BaseException | None = None) -> ConfigError:
    if looks_like_path(model) and not is_local(model):
        return ConfigError(f"expected a local model folder, got {model!r} (no such folder); check the path")
    if is_local(model):
        why = f"{type(exc).__name__}: {exc}".splitlines()[0] if exc else "unreadable"
        return ConfigError(
            f"expected a Hugging Face model folder (config.json, weights, preprocessor/tokenizer files), "
            f"got {model!r} ({why})"
        )
    where = "not in the local cache; hubs are unreachable offline" if offline() else "not found on the hub or in the cache"
    return ConfigError(
        f"expected a Hugging Face model id or a local model folder, got {model!r} ({where} — download it "
        f"first or pass a path; built-in {kind} extractors: {BUILTIN_HINT[kind]})"
    )


def load_pretrained(loader, model: str, revision: str | None, kind: str, **kwargs):
    """Call ``loader.from_pretrained`` and turn a missing/unreadable model into a ConfigError."""
    if looks_like_path(model) and not is_local(model):
        raise missing_model(model, kind)
    try:
        with quiet_progress():
            return loader.from_pretrained(model, **hub_kwargs(model, revision), **kwargs)
    except MirageError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise missing_model(model, kind, exc) from exc


@contextlib.contextmanager
def quiet_progress():
    """No per-model "Loading weights" bars: the extraction engine shows its own progress."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def content_fingerprint(folder: str) -> str:
    """Cheap fingerprint of a local model folder: names and sizes of every file, the full
    bytes of small files, and the first and last MiB of big ones (weights)."""
    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        h.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as fh:
            if size <= 2 * _BIG_FILE:
                h.update(fh.read())
            else:
                h.update(fh.read(_BIG_FILE))
                fh.seek(-_BIG_FILE, os.SEEK_END)
                h.update(fh.read())
    return "local-" + h.hexdigest()[:16]


def resolved_revision(model: str, hf_config, requested: str | None) -> str | None:
    """The commit hash a hub model was loaded at, a content fingerprint for a local folder."""
    if is_local(model):
        return content_fingerprint(model)
    return getattr(hf_config, "_commit_hash", None) or requested


def num_layers(hf_config) -> int:
    for attr in ("num_hidden_layers", "encoder_layers", "n_layer", "num_layers"):
        n = getattr(hf_config, attr, None)
        if isinstance(n, int):
            return n
    raise ConfigError(f"expected a transformer config with a layer count, got model_type {hf_config.model_type!r}")


def hidden_size(hf_config) -> int:
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        n = getattr(hf_config, attr, None)
        if isinstance(n, int):
            return n
    raise ConfigError(f"expected a transformer config with a hidden size, got model_type {hf_config.model_type!r}")


def check_layer(layer: int | None, n_layers: int, flag: str) -> None:
    """``layer`` indexes hidden_states: 0 = embeddings output, n_layers = last block."""
    if layer is None:
        return
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= n_layers:
        raise ConfigError(f"expected {flag} in 0..{n_layers}, got {layer!r}")


def float32() -> dict[str, Any]:
    """from_pretrained kwargs for float32 weights whatever the checkpoint's dtype (CPU-safe,
    deterministic); transformers 5 calls the argument ``dtype``, 4.x ``torch_dtype``."""
    import torch
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return {key: torch.float32}


def dropped_state(obj, heavy: tuple[str, ...]) -> dict[str, Any]:
    """__getstate__ helper: ship the description, never loaded weights/tokenizers."""
    state = dict(obj.__dict__)
    for key in heavy:
        state[key] = None
    return state
