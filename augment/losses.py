"""Loss terms: contrastive/InfoNCE with duplicate-aware positives, adversarial losses on
logits, mix-up in D's input, mode seeking and moment matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_logits(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """(len(a), len(b)) matrix of sim(a_i, b_j) / τ."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau


def info_nce_unique(query: torch.Tensor, keys: torch.Tensor, key_ids: torch.Tensor, tau: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query InfoNCE loss against the *distinct* keys of the batch, and that count.

    ``key_ids[i]`` names the key of query i; rows sharing an id (two utterances of the
    same sentence) share one candidate, so a duplicate is never a false negative and the
    bound's ceiling is log(#distinct) rather than log B.
    Returns (loss per query, n_distinct as a 0-d tensor).
    """
    uniq, inverse = torch.unique(key_ids, sorted=True, return_inverse=True)
    # First row holding each distinct id (scatter_reduce 'amin' is deterministic on CPU).
    rows = torch.arange(len(key_ids), device=key_ids.device)
    first = torch.full((len(uniq),), len(key_ids), dtype=torch.long, device=key_ids.device)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    logits = cosine_logits(query, keys[first], tau)
    loss = F.cross_entropy(logits, inverse, reduction="none")
    return loss, torch.tensor(float(len(uniq)), device=query.device)


def multi_positive_nce(query: torch.Tensor, keys: torch.Tensor, positive: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean of −log Σ_{j∈pos(i)} exp(s_ij) / Σ_j exp(s_ij) (every key kept, several positives)."""
    logits = cosine_logits(query, keys, tau)
    pos = logits.masked_fill(~positive, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(pos, dim=1)).mean()


def symmetric_contrastive(h_proj: torch.Tensor, t_proj: torch.Tensor, text_ids: torch.Tensor, tau: float) -> torch.Tensor:
    """L_CL averaged over both directions (audio→text over distinct texts, text→audio with
    every audio of the same sentence as a positive); equals CLIP's loss for unique texts."""
    a2t, _ = info_nce_unique(h_proj, t_proj, text_ids, tau)
    same = text_ids[:, None] == text_ids[None, :]
    t2a = multi_positive_nce(t_proj, h_proj, same, tau)
    return 0.5 * (a2t.mean() + t2a)


def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE on logits: real -> 1, fake -> 0."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def g_adversarial(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss on logits."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def mixup(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row α ~ U(0, 1): (α·real + (1−α)·fake, α) — D is trained to output α on the mix."""
    alpha = torch.rand(len(real), 1, generator=generator).to(real.device)
    return alpha * real + (1 - alpha) * fake, alpha.squeeze(1)


def mixup_loss(d_mix: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(d_mix, alpha)


def mode_seeking(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """Mao et al. (2019): 1 / (mean|G(z1)−G(z2)| / mean|z1−z2|); small when G spreads its noise."""
    ratio = (fake_a - fake_b).abs().mean(dim=1) / ((z_a - z_b).abs().mean(dim=1) + eps)
    return 1.0 / (ratio.mean() + eps)


def moment_matching(fake: torch.Tensor, real: torch.Tensor, y_fake: torch.Tensor, y_real: torch.Tensor,
                    n_classes: int) -> torch.Tensor:
    """Squared gap of per-class means and standard deviations (real treated as constant),
    averaged over the classes present in both batches."""
    terms = []
    for k in range(n_classes):
        f, r = fake[y_fake == k], real[y_real == k]
        if len(f) < 2 or len(r) < 2:
            continue
        r = r.detach()
        terms.append(((f.mean(0) - r.mean(0)) ** 2).mean() + ((f.std(0) - r.std(0)) ** 2).mean())
    if not terms:
        return fake.new_zeros(())
    return torch.stack(terms).mean()
