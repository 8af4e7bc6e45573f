"""Adversarial robustness on the embedding: ``--attack fgsm:eps=E`` (and ``pgd:eps=E[:steps=N][:alpha=A]``).

White-box, untargeted, L∞ attacks on the *standardised* embedding fed to the trained fold
classifier (so ``eps`` is in units of per-feature training std): FGSM takes one step
``x + eps · sign(∇x CE(f(x), y))``; PGD takes ``steps`` steps of size ``alpha`` (default
``2.5 · eps / steps``), each projected back into the eps-ball around x (no random start, so
the same model gives the same perturbation). The fold's clean test rows are attacked with their
true labels; ``metrics.json`` gains ``uar_under_attack`` (attack spec -> fold-mean UAR; ``none``
= the clean headline) and each fold ``uar_under_attack``. Several attacks can be given,
comma-separated, and ``fgsm:eps=0.1,0.5`` repeats the attack with another eps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError
from mirage.featstore.threads import fixed_threads

KINDS = {"fgsm": ("eps",), "pgd": ("eps", "steps", "alpha")}
_EXPECTED = "expected attacks such as fgsm:eps=0.1 or pgd:eps=0.1:steps=10"


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    kind: str
    eps: float
    steps: int = 1
    alpha: float | None = None

    @property
    def spec(self) -> str:
        if self.kind == "fgsm":
            return f"fgsm:eps={self.eps:g}"
        return f"pgd:eps={self.eps:g}:steps={self.steps}" + (f":alpha={self.alpha:g}" if self.alpha is not None else "")


def parse_attacks(text: str | Sequence[str] | None) -> list[AttackSpec]:
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    raw = text if isinstance(text, str) else ",".join(text)
    out: list[AttackSpec] = []
    last: dict[str, str] | None = None
    for token in (t.strip() for t in raw.split(",")):
        head, *rest = token.split(":")
        kind = head.strip().lower()
        if kind not in KINDS:
            if last is None or rest:
                raise ConfigError(f"--attack: {_EXPECTED}, got {token!r}")
            given = {**last, "eps": token}
        else:
            given = {"kind": kind}
            for part in rest:
                key, sep, value = part.partition("=")
                key = key.strip().lower()
                if not sep or key not in KINDS[kind]:
                    raise ConfigError(f"--attack: expected {kind} parameters among {', '.join(KINDS[kind])} as KEY=VALUE, "
                                      f"got {part!r} in {token!r}")
                given[key] = value.strip()
            if "eps" not in given:
                raise ConfigError(f"--attack: expected eps in {token!r}, e.g. {kind}:eps=0.1")
        try:
            spec = AttackSpec(given["kind"], float(given["eps"]), int(given.get("steps", 10 if given["kind"] == "pgd" else 1)),
                              float(given["alpha"]) if "alpha" in given else None)
        except ValueError:
            raise ConfigError(f"--attack: expected numbers for eps/steps/alpha, got {token!r}") from None
        if not (spec.eps >= 0 and np.isfinite(spec.eps)) or spec.steps < 1 or (spec.alpha is not None and spec.alpha <= 0):
            raise ConfigError(f"--attack: expected eps >= 0, steps >= 1, alpha > 0, got {token!r}")
        if spec in out:
            raise ConfigError(f"--attack: expected each attack once, got {spec.spec} twice")
        out.append(spec)
        last = {k: v for k, v in given.items() if k != "eps"}
    return out


def perturb(logits_fn: Callable, x: np.ndarray, y: np.ndarray, spec: AttackSpec, *, num_threads: int = 1) -> np.ndarray:
    """Adversarial rows for standardised ``x`` with true labels ``y`` against ``logits_fn`` (torch -> logits)."""
    import torch
    from torch.nn import functional as F

    if spec.eps == 0 or len(x) == 0:
        return np.asarray(x, np.float32)
    with fixed_threads(num_threads):
        x0 = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        yt = torch.from_numpy(np.asarray(y, np.int64))
        alpha = spec.eps if spec.kind == "fgsm" else (spec.alpha or 2.5 * spec.eps / spec.steps)
        xa = x0.clone()
        for _ in range(spec.steps):
            xa.requires_grad_(True)
            loss = F.cross_entropy(logits_fn(xa), yt, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                xa = xa + alpha * grad.sign()
                xa = torch.max(torch.min(xa, x0 + spec.eps), x0 - spec.eps)
        return xa.detach().numpy()


def attack_confusions(logits_fn: Callable, predict_fn: Callable, x: np.ndarray, y: np.ndarray, specs: Sequence[AttackSpec],
                      n_classes: int, *, num_threads: int = 1) -> dict[str, np.ndarray]:
    from mirage.train.metrics import confusion

    return {s.spec: confusion(y, predict_fn(perturb(logits_fn, x, y, s, num_threads=num_threads)), n_classes) for s in specs}


def add_attack_summary(metrics: dict[str, Any], results: Sequence, specs: Sequence[AttackSpec]) -> dict[str, Any]:
    from mirage.train.experiment import round_floats
    from mirage.train.metrics import summary

    mean, std = {"none": metrics["uar_mean"]}, {"none": metrics["uar_std"]}
    for s in specs:
        uars = [summary(r.by_attack[s.spec])["uar"] for r in results if s.spec in r.by_attack]
        mean[s.spec] = float(np.mean(uars)) if uars else float("nan")
        std[s.spec] = float(np.std(uars)) if uars else float("nan")
    return round_floats({**metrics, "uar_under_attack": mean, "uar_under_attack_std": std})
