"""Stage 2: the InfoGAN. G(z, y, t) is trained against D with the MI terms computed
through the frozen stage-1 heads; D sees real, fake and mixed-up inputs."""

from __future__ import annotations

import logging

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

log = logging.getLogger(__name__)


def build_gan(dims: dict, n_classes: int, cfg: FitConfig) -> tuple[Generator, Discriminator]:
    g = Generator(dims["audio"], n_classes, text_dim=dims.get("text"), noise_dim=cfg.noise_dim, hidden=cfg.hidden)
    d = Discriminator(dims["audio"], hidden=cfg.hidden, n_classes=n_classes if cfg.cond_d else None)
    return g, d


@torch.no_grad()
def score_generated(gen: Generator, align: AlignmentModel, z: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                    text_ids: torch.Tensor | None, prior: np.ndarray, tau: float) -> tuple[torch.Tensor, MIScore]:
    """Generate ĥ for the given codes and score it with the heads."""
    h = gen(z, y, t)
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

    def __init__(self, data: TrainingData, cfg: FitConfig, seed: int):
        rows = numpy_rng(seed, "eval", "rows").integers(0, data.n, size=cfg.eval_samples)
        self.y = torch.from_numpy(data.labels[rows])
        self.t = torch.from_numpy(data.text[rows]) if data.use_text else None
        self.ids = torch.from_numpy(data.text_ids[rows]) if data.use_text else None
        self.z = torch.randn(cfg.eval_samples, cfg.noise_dim, generator=torch_generator(seed, "eval", "z"))

    def score(self, gen, align, data: TrainingData, tau: float) -> dict[str, float]:
        gen.eval()
        h, s = score_generated(gen, align, self.z, self.y, self.t, self.ids, data.prior, tau)
        gen.train()
        return {"mi_y_nats": s.mi_y_nats, "mi_t_nats": s.mi_t_nats, "mi_y_ceiling_nats": s.mi_y_ceiling_nats,
                "mi_t_ceiling_nats": s.mi_t_ceiling_nats, "mi_score": s.score,
                "moment_gap": moment_gap(h.numpy(), data.audio)}


def train_gan(data: TrainingData, align: AlignmentModel, cfg: FitConfig, *, epochs: int, seed: int, history: History,
              progress: bool = True) -> tuple[Generator, Discriminator]:
    from tqdm.auto import tqdm

    dims = {"audio": data.audio.shape[1], "text": data.text.shape[1] if data.use_text else None}
    K = len(data.label_names)
    gen, disc = build_gan(dims, K, cfg)
    init_parameters(gen, torch_generator(seed, "init", "generator"))
    init_parameters(disc, torch_generator(seed, "init", "discriminator"))
    # foreach: one fused update per parameter list instead of a Python loop of small ops.
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999), foreach=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999), foreach=True)
    g_shuffle = torch_generator(seed, "shuffle", "gan")
    g_z = torch_generator(seed, "z", "gan")
    g_mix = torch_generator(seed, "mixup", "gan")
    h_all = torch.from_numpy(data.audio)
    y_all = torch.from_numpy(data.labels)
    t_all = torch.from_numpy(data.text) if data.use_text else None
    ids_all = torch.from_numpy(data.text_ids) if data.use_text else None
    evalset = _EvalSet(data, cfg, seed)
    history.add("gan", -1, lam=0.0, **evalset.score(gen, align, data, cfg.tau))  # epoch 0: untrained G
    h_prior = entropy_nats(data.prior)
    last_score = float("nan")

    bar = tqdm(range(epochs), desc="augment fit: stage 2 (InfoGAN)", disable=not progress, leave=False)
    for epoch in bar:
        lam = cfg.lambda_at(epoch, epochs)
        sums: dict[str, float] = {}
        steps = 0
        for step, idx in enumerate(batches(data.n, cfg.batch_size, g_shuffle)):
            # Fakes share the real batch's codes: the code distribution is the empirical one
            # and a mixed-up pair (and a projection D) sees one label.
            h, y = h_all[idx], y_all[idx]
            t = None if t_all is None else t_all[idx]
            ids = None if ids_all is None else ids_all[idx]
            z = torch.randn(len(idx), cfg.noise_dim, generator=g_z)
            fake = gen(z, y, t)

            # -- D step ------------------------------------------------------------------
            yd = y if cfg.cond_d else None
            # One D pass over [real; fake; mix]: one big matmul is cheaper than three small ones.
            parts = [h, fake.detach()]
            if cfg.mixup > 0:
                mixed, alpha = mixup(h, fake.detach(), g_mix)
                parts.append(mixed)
            out = disc(torch.cat(parts), None if yd is None else yd.repeat(len(parts)))
            b = len(idx)
            loss_d = d_loss(out[:b], out[b:2 * b])
            if cfg.mixup > 0:
                loss_d = loss_d + cfg.mixup * mixup_loss(out[2 * b:], alpha)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # -- G step ------------------------------------------------------------------
            terms = {"loss_g_adv": g_adversarial(disc(fake, yd))}
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
            if cfg.diversity > 0:
                z2 = torch.randn(len(idx), cfg.noise_dim, generator=g_z)
                terms["loss_mode_seeking"] = mode_seeking(fake, gen(z2, y, t), z, z2)
                loss_g = loss_g + cfg.diversity * terms["loss_mode_seeking"]
            if cfg.moment > 0:
                terms["loss_moment"] = moment_matching(fake, h, y, y, K)
                loss_g = loss_g + cfg.moment * terms["loss_moment"]
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            values = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                      **{k: float(v.detach()) for k, v in terms.items()}}
            check_losses("stage 2 (InfoGAN)", epoch, step, values, cfg.max_loss)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        means = {k: v / max(1, steps) for k, v in sums.items()}
        # Training-batch bounds are free every epoch; the fixed eval set is scored on a
        # schedule (about 50 points per fit) because it costs as much as a few steps.
        means["batch_mi_y_nats"] = h_prior - means.pop("batch_ce_y", float("nan"))
        scores = evalset.score(gen, align, data, cfg.tau) if _eval_now(epoch, epochs) else {}
        history.add("gan", epoch, lam=lam, **means, **scores)
        last_score = scores.get("mi_score", last_score)
        bar.set_postfix(d=f"{means.get('loss_d', float('nan')):.2f}", g=f"{means.get('loss_g_adv', float('nan')):.2f}",
                        mi=f"{last_score:.2f}")
        log.debug("gan epoch %d: %s %s", epoch + 1, means, scores)
    gen.eval()
    disc.eval()
    return gen, disc
