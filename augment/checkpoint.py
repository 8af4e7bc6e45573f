"""Generator checkpoints: ``weights.safetensors`` (all tensors: networks, standardisation
stats, text codes), ``codes.parquet`` (the training items whose codes G samples from) and
``config.json`` (written last: its presence marks a finished checkpoint). Nothing is
unpickled on load."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mirage.featstore.errors import CheckpointError, ConfigError, StoreCorruptError, StoreNotFoundError
from mirage.featstore.store.location import Location

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
CODES_NAME = "codes.parquet"
FORMAT = "mirage-generator"
FORMAT_VERSION = 1


@dataclass
class GeneratorBundle:
    """A loaded (or about to be saved) generator with everything generation needs."""

    config: dict[str, Any]
    align: Any            # AlignmentModel
    generator: Any        # Generator
    discriminator: Any    # Discriminator
    tensors: dict[str, np.ndarray]   # audio_/text_ mean, std (basis, scale), text_codes, code_labels, code_text_ids
    codes: pd.DataFrame   # utt_id, speaker, label, text of the code rows

    @property
    def fingerprint(self) -> str:
        return self.config["fingerprint"]

    @property
    def use_text(self) -> bool:
        return self.config["dims"]["text"] is not None

    def transform(self, kind: str):
        """The FeatureTransform between store features and the model space (kind: audio/text)."""
        from mirage.augment.data import FeatureTransform

        return FeatureTransform.from_tensors(self.tensors, kind)


def config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, indent=1, default=_json_default).encode()


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def fingerprint(weights: bytes, codes: bytes, config: dict[str, Any]) -> str:
    """sha256 over the weights, the codes and the config (minus where the store lay and the
    file checksums, which are derived from the weights and codes, and the declared kind, so
    fingerprints match those of fits written before kinds were declared)."""
    cfg = {k: v for k, v in config.items() if k not in ("fingerprint", "checksums", "kind")}
    cfg["source"] = {k: v for k, v in cfg.get("source", {}).items() if k != "url"}
    h = hashlib.sha256()
    for part in (weights, codes, config_bytes(cfg)):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _state(prefix: str, module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(out_dir: str, bundle: GeneratorBundle, storage_options: dict | None = None) -> str:
    """Write the three files (config last) and return the fingerprint."""
    from safetensors.torch import save

    loc = Location(out_dir, storage_options)
    tensors = {**_state("align", bundle.align), **_state("generator", bundle.generator),
               **_state("discriminator", bundle.discriminator),
               **{f"data.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in bundle.tensors.items() if v is not None}}
    weights = save(tensors)
    buf = io.BytesIO()
    bundle.codes.reset_index(drop=True).to_parquet(buf, index=False)
    codes = buf.getvalue()
    config = {**bundle.config, "format": FORMAT, "format_version": FORMAT_VERSION, "kind": "generator"}
    config["fingerprint"] = fingerprint(weights, codes, config)
    # checked on every load: a file altered, truncated or swapped after the fit is refused
    config["checksums"] = {"algorithm": "sha256", WEIGHTS_NAME: hashlib.sha256(weights).hexdigest(),
                           CODES_NAME: hashlib.sha256(codes).hexdigest()}
    loc.write_bytes(WEIGHTS_NAME, weights)
    loc.write_bytes(CODES_NAME, codes)
    loc.write_bytes(CONFIG_NAME, config_bytes(config))
    bundle.config = config
    return config["fingerprint"]


def uncommit(out_dir: str, storage_options: dict | None = None) -> None:
    """Remove config.json so a fit that fails midway never leaves a loadable old/new mix."""
    Location(out_dir, storage_options).rm(CONFIG_NAME)


def read_config(model_dir: str, storage_options: dict | None = None) -> dict[str, Any]:
    loc = Location(model_dir, storage_options)
    if not loc.exists(CONFIG_NAME):
        raise StoreNotFoundError(f"{loc.url}: expected a generator checkpoint ({CONFIG_NAME}), found none; "
                                 "run `augment fit --out` first (an interrupted fit leaves no checkpoint)")
    try:
        config = json.loads(loc.read_bytes(CONFIG_NAME))
    except ValueError as e:
        raise StoreCorruptError(f"{loc.url}/{CONFIG_NAME}: expected JSON, got unreadable content ({e})") from None
    if config.get("format") != FORMAT:
        raise ConfigError(f"{loc.url}: expected a {FORMAT} checkpoint, got format {config.get('format')!r}")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{loc.url}: checkpoint format {config.get('format_version')} is newer than this tool "
                          f"({FORMAT_VERSION}); upgrade mirage")
    return config


def load_checkpoint(model_dir: str, storage_options: dict | None = None) -> GeneratorBundle:
    """Rebuild the networks from config.json and fill them from the safetensors file."""
    from safetensors.torch import load

    from mirage.augment.align import build_alignment
    from mirage.augment.config import FitConfig
    from mirage.augment.gan import build_gan
    from mirage.augment.models import materialise

    loc = Location(model_dir, storage_options)
    config = read_config(model_dir, storage_options)
    try:
        weights = loc.read_bytes(WEIGHTS_NAME)
        codes_bytes = loc.read_bytes(CODES_NAME)
    except FileNotFoundError as e:
        raise StoreCorruptError(f"{loc.url}: checkpoint is missing {e.filename or 'a file'}; refit with `augment fit`") from None
    verify_files(loc.url, config, weights, codes_bytes)
    try:
        tensors = load(weights)
    except Exception as e:  # safetensors raises its own SafetensorError (and others) for a damaged file
        raise CheckpointError(f"{loc.url}/{WEIGHTS_NAME}: expected a safetensors file, got unreadable content "
                              f"({_first_line(e)}); refit with `augment fit`") from None
    try:
        codes = pd.read_parquet(io.BytesIO(codes_bytes))
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError) for a damaged file
        raise CheckpointError(f"{loc.url}/{CODES_NAME}: expected a Parquet table, got unreadable content "
                              f"({_first_line(e)}); refit with `augment fit`") from None
    known = {f.name for f in dataclasses.fields(FitConfig)}
    # Settings a newer/older tool no longer has (e.g. "device") do not shape the networks.
    cfg = FitConfig.from_kwargs(**{k: v for k, v in config["hyper"].items() if k in known})
    dims, K = config["dims"], len(config["labels"])
    model_dims = config.get("model_dims", dims)
    align = build_alignment(model_dims, K, cfg)
    gen, disc = build_gan(model_dims, K, cfg)
    for prefix, module in (("align", align), ("generator", gen), ("discriminator", disc)):
        materialise(module)
        state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "shape mismatch"
            raise ConfigError(f"{loc.url}: expected weights matching its config (audio dim {dims['audio']}, "
                              f"text dim {dims['text']}, {K} classes), got {first}; refit with `augment fit`") from None
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    data = {k[len("data."):]: v.numpy() for k, v in tensors.items() if k.startswith("data.")}
    bundle = GeneratorBundle(config=config, align=align, generator=gen, discriminator=disc, tensors=data, codes=codes)
    _check_consistent(loc.url, bundle)
    return bundle


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def verify_files(url: str, config: dict[str, Any], weights: bytes, codes: bytes) -> None:
    """Raise :class:`CheckpointError` when the files are not those the fit wrote.

    The SHA-256 of each file is recorded in config.json at save time; a checkpoint written
    before that is checked against its fingerprint (which hashes the same bytes)."""
    sums = config.get("checksums")
    if isinstance(sums, dict):
        if sums.get("algorithm") != "sha256":
            raise CheckpointError(f"{url}: expected sha256 file checksums in {CONFIG_NAME}, got {sums.get('algorithm')!r}; "
                                  "upgrade mirage or refit with `augment fit`")
        for name, data in ((WEIGHTS_NAME, weights), (CODES_NAME, codes)):
            if hashlib.sha256(data).hexdigest() != sums.get(name):
                raise CheckpointError(f"{url}/{name}: expected the file written by the fit (sha256 {str(sums.get(name))[:12]}...), "
                                      f"got {len(data)} bytes with another checksum — it was altered, truncated or "
                                      "replaced; refit with `augment fit` (or restore the generator folder)")
    if fingerprint(weights, codes, config) != config.get("fingerprint"):
        raise CheckpointError(f"{url}: expected weights, codes and config matching fingerprint {config.get('fingerprint')}, "
                              "got files that do not — the checkpoint was altered after the fit; refit with `augment fit`")


def _check_consistent(url: str, b: GeneratorBundle) -> None:
    dims = b.config["dims"]
    model = b.config.get("model_dims", dims)
    n_codes = len(b.codes)
    checks = [("audio_mean", (dims["audio"],)), ("audio_std", (dims["audio"],)), ("code_labels", (n_codes,))]
    if "audio_basis" in b.tensors:
        checks += [("audio_basis", (dims["audio"], model["audio"])), ("audio_scale", (model["audio"],))]
    if dims["text"] is not None:
        checks += [("text_mean", (dims["text"],)), ("text_std", (dims["text"],)), ("text_codes", (n_codes, dims["text"])),
                   ("code_text_ids", (n_codes,))]
        if "text_basis" in b.tensors:
            checks += [("text_basis", (dims["text"], model["text"])), ("text_scale", (model["text"],))]
    for name, shape in checks:
        got = b.tensors.get(name)
        if got is None or tuple(got.shape) != shape:
            raise ConfigError(f"{url}: expected {name} of shape {shape} (config dims audio={dims['audio']}, "
                              f"text={dims['text']}), got {None if got is None else tuple(got.shape)}; refit with `augment fit`")


def check_store_matches(config: dict[str, Any], store, *, what: str = "--store") -> None:
    """Raise ConfigError when ``store`` (a FeatureStore) has other feature dims than the model."""
    dims = config["dims"]
    got = {"audio": store.dim("audio"), "text": store.dim("text") if store.has("text") else None}
    if got["audio"] != dims["audio"] or (dims["text"] is not None and got["text"] != dims["text"]):
        raise ConfigError(f"{what} {store.url}: expected features of the generator's store (audio dim {dims['audio']}, "
                          f"text dim {dims['text']}), got audio dim {got['audio']}, text dim {got['text']}; "
                          "use the store the generator was fitted on or refit")
