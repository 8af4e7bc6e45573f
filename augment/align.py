"""Stage 1: fit the projection heads, the emotion head Q_y and the audio->text head Q_t on
real data. These heads are frozen afterwards and define both the MI terms of stage 2 and
the MI score of generated shards."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from mirage.augment.config import FitConfig
from mirage.augment.data import TrainingData
from mirage.augment.history import History, check_losses
from mirage.augment.losses import info_nce_unique, symmetric_contrastive
from mirage.augment.mi import score_samples
from mirage.augment.models import AlignmentModel, init_parameters
from mirage.augment.seeding import torch_generator

log = logging.getLogger(__name__)


def build_alignment(data_dims: dict, n_classes: int, cfg: FitConfig) -> AlignmentModel:
    return AlignmentModel(data_dims["audio"], n_classes, text_dim=data_dims.get("text"), hidden=cfg.hidden,
                          proj_dim=cfg.proj_dim)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch in batches of ``batch_size``; a last batch of < 2 rows is dropped
    (contrastive terms need a negative)."""
    perm = torch.randperm(n, generator=generator)
    size = min(batch_size, n)
    out = [perm[s:s + size] for s in range(0, n, size)]
    return [b for b in out if len(b) >= 2]


def alignment_loss(model: AlignmentModel, h: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                   ids: torch.Tensor | None, tau: float) -> dict[str, torch.Tensor]:
    proj, logits, q_t = model.heads(h)
    out = {"loss_ce": F.cross_entropy(logits, y)}
    if t is not None:
        out["loss_cl"] = symmetric_contrastive(proj, model.proj_t(t), ids, tau)
        nce, _ = info_nce_unique(q_t, t, ids, tau)
        # InfoNCE aligns directions only; the MSE keeps t' on the scale of real text embeddings.
        out["loss_qt"] = nce.mean() + F.mse_loss(q_t, t)
    out["loss"] = sum(out.values())
    return out


@torch.no_grad()
def real_data_mi(model: AlignmentModel, data: TrainingData, tau: float) -> dict[str, float]:
    """MI bounds of the heads on the real training data (the ceiling G can reach)."""
    model.eval()
    h = torch.from_numpy(data.audio)
    y = torch.from_numpy(data.labels)
    _, logits, q_t = model.heads(h)
    kw = {}
    if data.use_text:
        kw = {"q_t": q_t, "t": torch.from_numpy(data.text), "text_ids": torch.from_numpy(data.text_ids), "tau": tau}
    s = score_samples(logits, y, data.prior, **kw)
    acc = float((logits.argmax(1) == y).float().mean())
    return {"real_mi_y_nats": s.mi_y_nats, "real_mi_t_nats": s.mi_t_nats, "real_mi_score": s.score, "real_acc": acc}


def train_alignment(data: TrainingData, cfg: FitConfig, *, epochs: int, seed: int, history: History,
                    progress: bool = True) -> AlignmentModel:
    from tqdm.auto import tqdm

    dims = {"audio": data.audio.shape[1], "text": data.text.shape[1] if data.use_text else None}
    model = init_parameters(build_alignment(dims, len(data.label_names), cfg), torch_generator(seed, "init", "align"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr_align, weight_decay=cfg.weight_decay_align, foreach=True)
    g_shuffle = torch_generator(seed, "shuffle", "align")
    g_noise = torch_generator(seed, "noise", "align")
    h_all = torch.from_numpy(data.audio)
    y_all = torch.from_numpy(data.labels)
    t_all = torch.from_numpy(data.text) if data.use_text else None
    ids_all = torch.from_numpy(data.text_ids) if data.use_text else None

    bar = tqdm(range(epochs), desc="augment fit: stage 1 (alignment)", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        for step, idx in enumerate(batches(data.n, cfg.batch_size, g_shuffle)):
            h = h_all[idx]
            # Input noise regularises Q_y/Q_t: they score generated samples later and must not
            # only fit the training points.
            h = h + cfg.align_noise * torch.randn(h.shape, generator=g_noise)
            losses = alignment_loss(model, h, y_all[idx], None if t_all is None else t_all[idx],
                                    None if ids_all is None else ids_all[idx], cfg.tau)
            values = {k: float(v.detach()) for k, v in losses.items()}
            check_losses("stage 1 (alignment)", epoch, step, values, cfg.max_loss)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        means = {k: v / max(1, steps) for k, v in sums.items()}
        real = real_data_mi(model, data, cfg.tau)
        history.add("align", epoch, **means, **real)
        bar.set_postfix(loss=f"{means.get('loss', float('nan')):.3f}", acc=f"{real['real_acc']:.2f}")
        log.debug("align epoch %d: %s %s", epoch + 1, means, real)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
