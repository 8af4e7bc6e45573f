"""Stage 2: the InfoGAN. G(z, y, t) is trained against D with the MI terms computed
through the frozen stage-1 heads; D sees real, fake and mixed-up inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mirage.augment.align import batches
from mirage.augment.config import FitConfig
from mirage.augment.data import TrainingData
from mirage.augment.history import History, check_losses
from mirage.augment.losses import (
    d_loss, g_adversarial, info_nce_unique, mixup, mixup_loss, mode_seeking, moment_matching,
)
from mirage.augment.mi import MIScore, entropy_nats, score_samples
from mirage.augment.models import AlignmentModel, Discriminator, Generator, init_parameters
from mirage.augment.seeding import numpy_rng, torch_generator
from mirage.augment.speakers import SpeakerCodes, novel_codes, n_uniforms

log = logging.getLogger(__name__)


def build_gan(dims: dict, n_classes: int, cfg: FitConfig) -> tuple[Generator, Discriminator]:
    # dims["speaker"]: the speaker code's actual size (augment.speakers), present only when the lever is on
    g = Generator(dims["audio"], n_classes, text_dim=dims.get("text"), noise_dim=cfg.noise_dim, hidden=cfg.hidden,
                  speaker_dim=dims.get("speaker") or 0)
    d = Discriminator(dims["audio"], hidden=cfg.hidden, n_classes=n_classes if cfg.cond_d else None)
    return g, d


@torch.no_grad()
def score_generated(gen: Generator, align: AlignmentModel, z: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                    text_ids: torch.Tensor | None, prior: np.ndarray, tau: float,
                    s: torch.Tensor | None = None) -> tuple[torch.Tensor, MIScore]:
    """Generate ĥ for the given codes and score it with the heads."""
    h = gen(z, y, t) if s is None else gen(z, y, t, s)
    _, logits, q_t = align.heads(h)
    kw = {"q_t": q_t, "t": t, "text_ids": text_ids, "tau": tau} if t is not None else {}
    return h, score_samples(logits, y, prior, **kw)


def moment_gap(fake: np.ndarray, real: np.ndarray) -> float:
    """Mean squared gap of per-dim mean and std (standardised units): 0 = same first two moments."""
    return float(((fake.mean(0) - real.mean(0)) ** 2).mean() + ((fake.std(0) - real.std(0)) ** 2).mean())


def _eval_now(epoch: int, epochs: int, points: int = 50) -> bool:
    every = max(1, epochs // points)
    return (epoch + 1) % every == 0 or epoch + 1 == epochs


class _EvalSet:
    """Fixed codes and noise scored after every epoch (same samples each time, so the
    curves show G changing, not the sample)."""

    def __init__(self, data: TrainingData, cfg: FitConfig, seed: int, speakers: SpeakerCodes | None = None):
        rows = numpy_rng(seed, "eval", "rows").integers(0, data.n, size=cfg.eval_samples)
        self.speakers = speakers
        # the eval rows' own speakers: the curves show how well G keeps a training speaker's code
        self.s = torch.from_numpy(speakers.row_codes(data.items["speaker"].to_numpy()[rows])) if speakers else None
        self.y = torch.from_numpy(data.labels[rows])
        self.t = torch.from_numpy(data.text[rows]) if data.use_text else None
        self.ids = torch.from_numpy(data.text_ids[rows]) if data.use_text else None
        self.z = torch.randn(cfg.eval_samples, cfg.noise_dim, generator=torch_generator(seed, "eval", "z"))

    def score(self, gen, align, data: TrainingData, tau: float) -> dict[str, float]:
        gen.eval()
        h, s = score_generated(gen, align, self.z, self.y, self.t, self.ids, data.prior, tau, self.s)
        gen.train()
        out = {"mi_y_nats": s.mi_y_nats, "mi_t_nats": s.mi_t_nats, "mi_y_ceiling_nats": s.mi_y_ceiling_nats,
               "mi_t_ceiling_nats": s.mi_t_ceiling_nats, "mi_score": s.score,
               "moment_gap": moment_gap(h.numpy(), data.audio)}
        if self.speakers is not None:
            out.update(self.speakers.scores(h, self.s))
        return out


@dataclass
class _Gan:
    """What one InfoGAN fit carries from step to step: the two nets, their optimisers and
    the named random streams (shuffling, noise, mix-up), each seeded on its own."""

    gen: Generator
    disc: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_shuffle: torch.Generator
    g_z: torch.Generator
    g_mix: torch.Generator
    speakers: SpeakerCodes | None = None
    g_spk: np.random.Generator | None = None   # which fakes get a novel speaker, and its mixture


def _setup(data: TrainingData, cfg: FitConfig, seed: int, speakers: SpeakerCodes | None = None) -> _Gan:
    dims = {"audio": data.audio.shape[1], "text": data.text.shape[1] if data.use_text else None,
            "speaker": speakers.dim if speakers else None}
    gen, disc = build_gan(dims, len(data.label_names), cfg)
    init_parameters(gen, torch_generator(seed, "init", "generator"))
    init_parameters(disc, torch_generator(seed, "init", "discriminator"))
    # foreach: one fused update per parameter list instead of a Python loop of small ops.
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999), foreach=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999), foreach=True)
    return _Gan(gen, disc, opt_g, opt_d, torch_generator(seed, "shuffle", "gan"), torch_generator(seed, "z", "gan"),
                torch_generator(seed, "mixup", "gan"), speakers,
                numpy_rng(seed, "speaker", "gan") if speakers else None)


def _d_step(gan: _Gan, cfg: FitConfig, h: torch.Tensor, fake: torch.Tensor, yd: torch.Tensor | None) -> torch.Tensor:
    """One discriminator update on real, fake and (with mix-up) mixed inputs; returns its loss."""
    # One D pass over [real; fake; mix]: one big matmul is cheaper than three small ones.
    parts = [h, fake.detach()]
    if cfg.mixup > 0:
        mixed, alpha = mixup(h, fake.detach(), gan.g_mix)
        parts.append(mixed)
    out = gan.disc(torch.cat(parts), None if yd is None else yd.repeat(len(parts)))
    b = len(h)
    loss_d = d_loss(out[:b], out[b:2 * b])
    if cfg.mixup > 0:
        loss_d = loss_d + cfg.mixup * mixup_loss(out[2 * b:], alpha)
    gan.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    gan.opt_d.step()
    return loss_d


def _g_step(gan: _Gan, align: AlignmentModel, cfg: FitConfig, batch: tuple, fake: torch.Tensor, z: torch.Tensor,
            yd: torch.Tensor | None, lam: float, n_classes: int, sums: dict[str, float]) -> tuple[torch.Tensor, dict]:
    """One generator update: adversarial + λ·(MI terms through the frozen heads) + optional
    diversity and moment terms; adds the batch MI bounds to ``sums``. Returns (loss, terms)."""
    h, y, t, ids, s = batch
    terms = {"loss_g_adv": g_adversarial(gan.disc(fake, yd))}
    _, logits, q_t = align.heads(fake)
    ce = F.cross_entropy(logits, y, reduction="none")
    sums["batch_ce_y"] = sums.get("batch_ce_y", 0.0) + float(ce.detach().mean())
    # A margin stops pushing samples once Q_y places them with CE <= margin, so they
    # are not driven deep into its decision regions ("too easy" samples).
    terms["loss_g_mi_y"] = (ce - cfg.ce_margin_nats).clamp_min(0).mean() if cfg.ce_margin_nats > 0 else ce.mean()
    if t is not None:
        nce, n_distinct = info_nce_unique(q_t, t, ids, cfg.tau)
        terms["loss_g_mi_t"] = nce.mean()
        sums["batch_mi_t_nats"] = sums.get("batch_mi_t_nats", 0.0) + float(np.log(n_distinct.item()) - nce.detach().mean())
    mi_terms = terms["loss_g_mi_y"] + cfg.lambda_text * terms.get("loss_g_mi_t", 0.0)
    loss_g = terms["loss_g_adv"] + lam * mi_terms
    if s is not None:
        # its own weight λ_s, not λ: the cgan ablation (λ = 0) can keep its speaker term
        terms["loss_g_mi_s"] = gan.speakers.nll(fake, s).mean()
        loss_g = loss_g + cfg.lambda_speaker * terms["loss_g_mi_s"]
    if cfg.diversity > 0:
        z2 = torch.randn(len(y), cfg.noise_dim, generator=gan.g_z)
        terms["loss_mode_seeking"] = mode_seeking(fake, gan.gen(z2, y, t, *([] if s is None else [s])), z, z2)
        loss_g = loss_g + cfg.diversity * terms["loss_mode_seeking"]
    if cfg.moment > 0:
        terms["loss_moment"] = moment_matching(fake, h, y, y, n_classes)
        loss_g = loss_g + cfg.moment * terms["loss_moment"]
    gan.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gan.opt_g.step()
    return loss_g, terms


def _fake_speakers(gan: _Gan, cfg: FitConfig, s_real: torch.Tensor) -> torch.Tensor:
    """The batch's speaker codes for the fakes: the real rows' own, a ``speaker_mix_train`` share
    replaced by novel mixtures drawn as generation draws them (GenerateConfig's defaults), so G
    is trained on the region of code space it is later asked to generate from."""
    if cfg.speaker_mix_train <= 0:
        return s_real
    from mirage.augment.config import GenerateConfig

    gc = GenerateConfig()
    codes = gan.speakers.codes
    k = min(gc.speaker_mix, len(codes))
    swap = gan.g_spk.random(len(s_real)) < cfg.speaker_mix_train
    u = gan.g_spk.random((len(s_real), n_uniforms(len(codes), k)))
    mixed = novel_codes(codes, u, k=k, extrapolate=gc.speaker_extrapolate)
    return torch.where(torch.from_numpy(swap)[:, None], torch.from_numpy(mixed), s_real)


def _epoch(gan: _Gan, align: AlignmentModel, data: TrainingData, tensors: tuple, cfg: FitConfig, *, epoch: int,
           lam: float) -> dict[str, float]:
    """One pass over the training rows; the epoch's mean losses and batch MI bounds."""
    h_all, y_all, t_all, ids_all, s_all = tensors
    n_classes = len(data.label_names)
    sums: dict[str, float] = {}
    steps = 0
    for step, idx in enumerate(batches(data.n, cfg.batch_size, gan.g_shuffle)):
        # Fakes share the real batch's codes: the code distribution is the empirical one
        # and a mixed-up pair (and a projection D) sees one label.
        s = None if s_all is None else _fake_speakers(gan, cfg, s_all[idx])
        batch = (h_all[idx], y_all[idx], None if t_all is None else t_all[idx], None if ids_all is None else ids_all[idx],
                 s)
        z = torch.randn(len(idx), cfg.noise_dim, generator=gan.g_z)
        fake = gan.gen(z, batch[1], batch[2]) if s is None else gan.gen(z, batch[1], batch[2], s)
        yd = batch[1] if cfg.cond_d else None
        loss_d = _d_step(gan, cfg, batch[0], fake, yd)
        loss_g, terms = _g_step(gan, align, cfg, batch, fake, z, yd, lam, n_classes, sums)
        values = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                  **{k: float(v.detach()) for k, v in terms.items()}}
        check_losses("stage 2 (InfoGAN)", epoch, step, values, cfg.max_loss)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
    means = {k: v / max(1, steps) for k, v in sums.items()}
    means["batch_mi_y_nats"] = entropy_nats(data.prior) - means.pop("batch_ce_y", float("nan"))
    return means


def train_gan(data: TrainingData, align: AlignmentModel, cfg: FitConfig, *, epochs: int, seed: int, history: History,
              progress: bool = True, speakers: SpeakerCodes | None = None) -> tuple[Generator, Discriminator]:
    """Stage 2: set up, then per epoch one pass of D and G steps (:func:`_epoch`) and, on a
    schedule, the fixed eval set's MI scores; every epoch's record goes to ``history``.
    ``speakers``: the speaker codes and Q_s head of a speaker-aware fit (augment.speakers)."""
    from tqdm.auto import tqdm

    gan = _setup(data, cfg, seed, speakers)
    tensors = (torch.from_numpy(data.audio), torch.from_numpy(data.labels),
               torch.from_numpy(data.text) if data.use_text else None,
               torch.from_numpy(data.text_ids) if data.use_text else None,
               torch.from_numpy(speakers.row_codes(data.items["speaker"].to_numpy())) if speakers else None)
    evalset = _EvalSet(data, cfg, seed, speakers)
    history.add("gan", -1, lam=0.0, **evalset.score(gan.gen, align, data, cfg.tau))  # epoch 0: untrained G
    last_score = float("nan")
    bar = tqdm(range(epochs), desc="augment fit: stage 2 (InfoGAN)", disable=not progress, leave=False)
    for epoch in bar:
        lam = cfg.lambda_at(epoch, epochs)
        means = _epoch(gan, align, data, tensors, cfg, epoch=epoch, lam=lam)
        # Training-batch bounds are free every epoch; the fixed eval set is scored on a
        # schedule (about 50 points per fit) because it costs as much as a few steps.
        scores = evalset.score(gan.gen, align, data, cfg.tau) if _eval_now(epoch, epochs) else {}
        history.add("gan", epoch, lam=lam, **means, **scores)
        last_score = scores.get("mi_score", last_score)
        bar.set_postfix(d=f"{means.get('loss_d', float('nan')):.2f}", g=f"{means.get('loss_g_adv', float('nan')):.2f}",
                        mi=f"{last_score:.2f}")
        log.debug("gan epoch %d: %s %s", epoch + 1, means, scores)
    gan.gen.eval()
    gan.disc.eval()
    return gan.gen, gan.disc
