"""``augment fit``: stage 1 (alignment heads) then stage 2 (InfoGAN), then one checkpoint."""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import numpy as np

from mirage.featstore.errors import ConfigError, StoreExistsError, TrainingDivergedError
from mirage.featstore.runtime import Runtime
from mirage.featstore.store.location import Location, WriterLock, is_remote

from mirage.augment import checkpoint as ckpt
from mirage.augment.config import FitConfig
from mirage.augment.data import TrainingData, load_training_data
from mirage.augment.history import CSV_NAME, PNG_NAME, History
from mirage.augment.seeding import check_seed, fixed_threads

log = logging.getLogger(__name__)


def fit_generator(store, out_dir, *, mode: str = "ser", exclude_speakers=(), include_utt_ids=None,
                  lambda_mi: float | None = None, epochs: int | None = None, seed: int = 0,
                  storage_options: dict | None = None, progress: bool | None = None, use_text: bool | None = None,
                  overwrite: bool = False, config: FitConfig | None = None, runtime: Runtime | None = None,
                  **hyper: Any) -> pathlib.Path | str:
    """Train a generator on the labelled items of ``store`` and write it to ``out_dir``.

    ``mode``: "ser" (c = y; ``use_text=True`` adds the text code) or "multimodal"
    (c = (y, t), text required; generation also writes t'). ``exclude_speakers`` /
    ``include_utt_ids`` select the training items (a LOSO fold). ``lambda_mi=0`` is the
    conditional-GAN ablation; ``epochs=0`` leaves G untrained. Other settings: see
    :class:`augment.config.FitConfig` — given as ``config`` or as keywords, not both.
    ``runtime`` (:class:`featstore.runtime.Runtime`) carries the storage options and progress
    (or give ``storage_options`` / ``progress``). Returns the model dir (a Path for local dirs).
    Raises TrainingDivergedError (and writes no checkpoint) when a loss turns NaN/explodes.
    """
    seed = check_seed(seed)
    if config is None:
        cfg = FitConfig.from_kwargs(lambda_mi=lambda_mi, epochs=epochs, **hyper)
    elif hyper or lambda_mi is not None or epochs is not None:
        given = sorted([*hyper, *(k for k, v in (("lambda_mi", lambda_mi), ("epochs", epochs)) if v is not None)])
        raise ConfigError(f"expected either config= or fit settings as keywords, got both ({', '.join(given)})")
    else:
        cfg = config
    runtime = Runtime.resolve(runtime, storage_options=storage_options, progress=progress)
    storage_options, progress = runtime.storage_options, runtime.progress
    from mirage.featstore.kinds import GENERATOR, check_output

    check_output(str(out_dir), GENERATOR, flag="--out", storage_options=storage_options)  # before reading the store
    # numpy's BLAS threads too (the PCA of the working space, the MI scores): the same bytes
    # in-process, in a Dask worker and on a machine with another core count
    with fixed_threads(cfg.num_threads, blas=True):
        data = load_training_data(store, mode=mode, use_text=use_text, exclude_speakers=exclude_speakers,
                                  include_utt_ids=include_utt_ids, storage_options=storage_options, pca_var=cfg.pca_var,
                                  pca_max_dim=cfg.pca_max_dim)
        loc = Location(str(out_dir), storage_options)
        with WriterLock(loc, f"generator folder {loc.url}"):  # two fits into one --out: the second is refused
            return _fit_locked(loc, data, cfg, mode, seed, exclude_speakers, overwrite, storage_options, progress)


def _fit_locked(loc: Location, data, cfg: FitConfig, mode: str, seed: int, exclude_speakers, overwrite: bool,
                storage_options, progress: bool) -> pathlib.Path | str:
    _claim_out_dir(loc, data, overwrite, storage_options)
    align_epochs, gan_epochs = cfg.resolved_epochs(data.n)
    log.info("fitting on %d items (%d speakers, %d classes, audio dim %d -> %d%s): %d + %d epochs, lambda %.3g",
             data.n, len(data.speakers), len(data.label_names), len(data.audio_norm.mean), data.audio.shape[1],
             f", text dim {len(data.text_norm.mean)} -> {data.text.shape[1]}" if data.use_text else ", text-free",
             align_epochs, gan_epochs, cfg.lambda_mi)

    from mirage.augment.align import train_alignment
    from mirage.augment.gan import train_gan
    from mirage.augment.speakers import SpeakerCodes

    # closed form (no randomness): the codes and the frozen Q_s head, before any training
    speakers = (SpeakerCodes.fit(data.audio, data.labels, data.items["speaker"].to_numpy(), cfg.speaker_dims)
                if cfg.speaker_dims else None)
    history = History()
    t0 = time.perf_counter()
    try:
        with fixed_threads(cfg.num_threads):
            align = train_alignment(data, cfg, epochs=align_epochs, seed=seed, history=history, progress=progress)
            gen, disc = train_gan(data, align, cfg, epochs=gan_epochs, seed=seed, history=history, progress=progress,
                                  speakers=speakers)
    except TrainingDivergedError:
        _write_history(loc, history)  # the curves up to the failure help find the cause
        raise
    fit_s = time.perf_counter() - t0
    _write_history(loc, history)
    bundle = ckpt.GeneratorBundle(
        config=_config(data, cfg, mode, seed, align_epochs, gan_epochs, history, exclude_speakers, speakers),
        align=align, generator=gen, discriminator=disc, tensors=_tensors(data, speakers), codes=data.items)
    fp = ckpt.save_checkpoint(loc.url, bundle, storage_options)
    final = bundle.config["final"]
    log.info("wrote generator %s to %s in %.1f s: MI score %.3f (I(y;h) %.3f nats%s)", fp, loc.url, fit_s,
             final["mi_score"], final["mi_y_nats"],
             f", I(t;h) {final['mi_t_nats']:.3f} nats" if data.use_text else "")
    return loc.url if is_remote(loc.url) else pathlib.Path(loc.url)


#: fit_generator's own keyword arguments that are not FitConfig fields.
FIT_KWARGS = ("mode", "exclude_speakers", "include_utt_ids", "seed", "storage_options", "progress", "use_text",
              "overwrite")


def check_fit_options(**options: Any) -> None:
    """Validate options meant for :func:`fit_generator` without fitting (raises ConfigError)."""
    from mirage.augment.data import MODES

    if "mode" in options and options["mode"] not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {options['mode']!r}")
    if "seed" in options:
        check_seed(options["seed"])
    FitConfig.from_kwargs(**{k: v for k, v in options.items() if k not in FIT_KWARGS})


def _claim_out_dir(loc: Location, data: TrainingData, overwrite: bool, storage_options) -> None:
    """Refuse to replace a checkpoint made from another store unless asked; then uncommit it."""
    if loc.exists(ckpt.CONFIG_NAME) and not overwrite:
        try:
            old = ckpt.read_config(loc.url, storage_options)
        except Exception:  # an unreadable config is nothing worth protecting
            old = None
        if old is not None and old.get("source", {}).get("content_hash") != data.source["content_hash"]:
            raise StoreExistsError(
                f"{loc.url} holds a generator fitted on another store (audio dim {old['dims']['audio']}, "
                f"text dim {old['dims']['text']}); expected an empty --out — pass --overwrite to replace it")
    ckpt.uncommit(loc.url, storage_options)


def _tensors(data: TrainingData, speakers=None) -> dict[str, np.ndarray | None]:
    t = {**data.audio_norm.tensors("audio"), "code_labels": data.labels}
    if data.use_text:
        t.update(**data.text_norm.tensors("text"), text_codes=data.text_raw, code_text_ids=data.text_ids)
    if speakers is not None:  # what generation needs to draw speaker codes (augment.speakers)
        t.update(speakers.tensors())
    return t


def _config(data: TrainingData, cfg: FitConfig, mode: str, seed: int, align_epochs: int, gan_epochs: int,
            history: History, exclude_speakers, speakers=None) -> dict[str, Any]:
    from mirage.augment.counts import parse_speakers
    from mirage.augment.speakers import FIT_FIELDS

    gan, align = history.last("gan"), history.last("align")
    hyper = cfg.to_dict()
    if speakers is None:  # a fit without the lever keeps the config (and fingerprint) it had before the lever
        hyper = {k: v for k, v in hyper.items() if k not in FIT_FIELDS}

    def _f(row: dict, key: str) -> float | None:
        v = row.get(key)
        return None if v is None or not np.isfinite(v) else round(float(v), 6)

    out = {
        "mode": mode,
        "use_text": data.use_text,
        "labels": data.label_names,
        "label_prior": [round(float(p), 8) for p in data.prior],
        # store feature widths (what shards hold) and the widths of the space the networks work in
        "dims": {"audio": int(len(data.audio_norm.mean)), "text": int(len(data.text_norm.mean)) if data.use_text else None},
        "model_dims": {"audio": int(data.audio.shape[1]), "text": int(data.text.shape[1]) if data.use_text else None},
        "latent": {"noise_dim": cfg.noise_dim, "n_classes": len(data.label_names),
                   "text_dim": int(data.text.shape[1]) if data.use_text else None},  # G's code: (z, y, t)
        "lambda_mi": cfg.lambda_mi,
        "tau": cfg.tau,
        "seed": seed,
        "hyper": hyper,
        "epochs": {"align": align_epochs, "gan": gan_epochs},
        "source": data.source,
        "speakers": data.speakers,
        "excluded_speakers": list(parse_speakers(exclude_speakers)),
        "n_train_items": data.n,
        "final": {"mi_y_nats": _f(gan, "mi_y_nats"), "mi_t_nats": _f(gan, "mi_t_nats"), "mi_score": _f(gan, "mi_score"),
                  "moment_gap": _f(gan, "moment_gap"), "real_mi_y_nats": _f(align, "real_mi_y_nats"),
                  "real_mi_t_nats": _f(align, "real_mi_t_nats"), "real_acc": _f(align, "real_acc")},
    }
    if speakers is not None:
        import torch

        out["model_dims"]["speaker"] = speakers.dim
        out["latent"]["speaker_dim"] = speakers.dim   # G's code: (z, y, t, s)
        real = speakers.scores(torch.from_numpy(data.audio), torch.from_numpy(
            speakers.row_codes(data.items["speaker"].to_numpy())))
        out["speaker_code"] = {**speakers.config(cfg.speaker_dims),
                               "real": {k: round(v, 6) for k, v in real.items()}}   # Q_s on the real rows: its ceiling
        out["final"].update(mi_s_nats=_f(gan, "mi_s_nats"), r2_s=_f(gan, "r2_s"))
    return out


def _write_history(loc: Location, history: History) -> None:
    if not history.rows:
        return
    loc.write_bytes(CSV_NAME, history.csv_bytes())
    try:
        loc.write_bytes(PNG_NAME, history.png_bytes())
    except ImportError as e:  # matplotlib is a dependency, but a broken install must not lose the weights
        log.warning("could not draw %s: %s", PNG_NAME, e)
