"""The networks: stage-1 alignment (projection heads, Q_y, Q_t), generator G(z, y, t) and
discriminator D(h). Small MLPs; parameters are initialised from an explicit generator."""

from __future__ import annotations

import math

import torch
from torch import nn

_SLOPE = 0.2  # LeakyReLU slope, the usual GAN choice


def mlp(d_in: int, hidden: int, d_out: int, *, depth: int = 2) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with LeakyReLU, then a linear output.

    Built on the meta device so construction draws nothing from torch's global RNG;
    call :func:`init_parameters` afterwards.
    """
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden, device="meta"), nn.LeakyReLU(_SLOPE)]
        d = hidden
    layers.append(nn.Linear(d, d_out, device="meta"))
    return nn.Sequential(*layers)


def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Materialise on CPU and initialise like torch's defaults, but from ``generator``."""
    materialise(module)
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1.0 / math.sqrt(m.in_features) if m.in_features else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
    return module


def materialise(module: nn.Module) -> nn.Module:
    """Replace meta parameters by uninitialised CPU ones (cheaper than ``to_empty``, which
    pulls in sympy on first use)."""
    for m in module.modules():
        for name, p in list(m.named_parameters(recurse=False)):
            if p.is_meta:
                setattr(m, name, nn.Parameter(torch.empty(p.shape, dtype=p.dtype), requires_grad=p.requires_grad))
    return module


class AlignmentModel(nn.Module):
    """Stage 1: projection heads into a shared space plus the prediction layers.

    Q_y(h) = head_y(proj_h(h)) gives emotion logits; Q_t(h) = head_t(proj_h(h)) predicts the
    (standardised) text embedding, i.e. t' in the text space. Text parts exist only when
    ``text_dim`` is set.
    """

    def __init__(self, audio_dim: int, n_classes: int, *, text_dim: int | None, hidden: int, proj_dim: int):
        super().__init__()
        self.proj_h = mlp(audio_dim, hidden, proj_dim, depth=1)
        self.head_y = nn.Linear(proj_dim, n_classes, device="meta")
        self.use_text = text_dim is not None
        if self.use_text:
            self.proj_t = mlp(text_dim, hidden, proj_dim, depth=1)
            self.head_t = nn.Linear(proj_dim, text_dim, device="meta")

    def q_y(self, h: torch.Tensor) -> torch.Tensor:
        return self.head_y(self.proj_h(h))

    def q_t(self, h: torch.Tensor) -> torch.Tensor:
        return self.head_t(self.proj_h(h))

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(shared projection, Q_y logits, Q_t prediction or None) in one pass."""
        p = self.proj_h(h)
        return p, self.head_y(p), (self.head_t(p) if self.use_text else None)


class Generator(nn.Module):
    """G(z, c) with c = (one-hot y, standardised t, speaker code s) -> standardised audio embedding ĥ
    (t and s only where the generator is conditioned on them; see augment.speakers for s)."""

    def __init__(self, audio_dim: int, n_classes: int, *, text_dim: int | None, noise_dim: int, hidden: int,
                 speaker_dim: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.noise_dim = noise_dim
        self.text_dim = text_dim
        self.speaker_dim = int(speaker_dim)
        self.net = mlp(noise_dim + n_classes + (text_dim or 0) + self.speaker_dim, hidden, audio_dim, depth=2)

    def forward(self, z: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None,
                s: torch.Tensor | None = None) -> torch.Tensor:
        parts = [z, nn.functional.one_hot(y, self.n_classes).to(z.dtype)]
        if self.text_dim is not None:
            if t is None:
                raise ValueError("this generator is conditioned on text; pass t")
            parts.append(t)
        if self.speaker_dim:
            if s is None:
                raise ValueError("this generator is conditioned on a speaker code; pass s (augment.speakers)")
            parts.append(s.to(z.dtype))
        return self.net(torch.cat(parts, dim=1))


class Discriminator(nn.Module):
    """D(h) -> real/fake logit; with ``n_classes`` set, a projection discriminator D(h, y)."""

    def __init__(self, audio_dim: int, *, hidden: int, n_classes: int | None = None):
        super().__init__()
        self.body = mlp(audio_dim, hidden, hidden, depth=1)
        self.act = nn.LeakyReLU(_SLOPE)
        self.out = nn.Linear(hidden, 1, device="meta")
        self.embed = nn.Embedding(n_classes, hidden, device="meta") if n_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.act(self.body(h))
        logit = self.out(phi).squeeze(1)
        if self.embed is not None and y is not None:
            logit = logit + (self.embed(y) * phi).sum(dim=1)
        return logit
