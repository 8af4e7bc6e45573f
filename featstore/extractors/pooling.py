"""Masked pooling of frame- or token-level states into one vector per item."""

from __future__ import annotations

from mirage.featstore.errors import UnknownNameError

#: Pooling modes every embedding backend understands.
POOLINGS = ("mean", "meanstd")


def check_pooling(pooling: str, allowed: tuple[str, ...] = POOLINGS) -> str:
    if pooling not in allowed:
        raise UnknownNameError(f"expected a pooling mode in {', '.join(allowed)}, got {pooling!r}")
    return pooling


def masked_pool(states, mask, pooling: str):
    """Pool ``states`` (B, T, D) over the frames where ``mask`` (B, T) is true.

    "mean" gives (B, D); "meanstd" gives (B, 2D): mean then population std. Padded frames
    never contribute, so an item's vector does not depend on what it was batched with.
    """
    import torch

    w = mask.to(states.dtype).unsqueeze(-1)
    n = w.sum(dim=1).clamp_min(1.0)
    mean = (states * w).sum(dim=1) / n
    if pooling == "mean":
        return mean
    var = (((states - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / n
    return torch.cat([mean, var.clamp_min(0.0).sqrt()], dim=-1)


def lengths_to_mask(lengths, max_len: int):
    """(B,) integer lengths -> (B, max_len) bool mask."""
    import torch

    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
