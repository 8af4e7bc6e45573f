"""Speaker codes for the speaker-aware InfoGAN (issue 12, lever 4a): c = (y, s).

s is where a speaker sits in the generator's working space (the FeatureTransform space of
:mod:`augment.data`), made low-dimensional:

* each row minus its class mean (so a speaker's code says who speaks, not which emotions
  the speaker happened to record), averaged per speaker: the per-speaker means;
* the leading principal components of those means (centred on their unweighted mean), at
  most ``speakers - 1`` of them (the means span no more), each scaled to unit variance over
  the speakers, so G's input is on the scale of z.

Q_s, the head the MI term uses, is a ridge regression from one row ĥ to its speaker's code,
fitted in closed form on the real rows and frozen, like the stage-1 Q_y: the term asks a
generated row to look like speaker s *to a predictor trained on real speech*, not merely to
carry s in some direction only G and a jointly trained Q know. Its residual variance makes it
a Gaussian Q(s | ĥ); the bound I(s; ĥ) >= h(s) - E[-log Q(s | ĥ)] is reported with h(s) taken
as the Gaussian entropy of the training rows' codes, as InfoGAN reports its continuous codes.

Novel speakers (generation, and a share of the fakes in training): a mixture of ``k``
distinct training speakers' codes with Dirichlet(1) weights, each speaker keeping a share of
at least ``_MIN_SHARE`` (so a novel code is never one training speaker's in disguise), then
stretched away from the centre of all training speakers by a factor 1 + e, e ~ U(0,
``extrapolate``): mixing shrinks the spread of the codes towards the centre, the stretch
gives it back and reaches a little beyond the training speakers (DeVries & Taylor 2017
extrapolate in feature space the same way). The randomness comes from uniforms the caller
draws from its own seeded stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from mirage.featstore.errors import ConfigError

log = logging.getLogger(__name__)

#: Ridge penalty of Q_s per training row. Under the default PCA the working space is whitened
#: on the training rows (X'X = N I), so this shrinks every coefficient by 1 / (1 + 0.1): enough
#: to tame the directions that carry no speaker information, too little to bias the speaker
#: ones much (with --pca-var 1 the dims are standardised, X'X has a diagonal of N).
_RIDGE = 0.1
_VAR_FLOOR = 1e-4   # Q_s residual variance floor (codes are in unit-variance units)
_U_EPS = 1e-12
_MIN_SHARE = 0.1    # least weight of each mixed speaker (capped at 0.5 / k for large k)

#: FitConfig fields of this lever: left out of config.json's "hyper" while the lever is off,
#: so generators fitted without it keep the bytes (and fingerprints) they had before it existed.
FIT_FIELDS = ("speaker_dims", "lambda_speaker", "speaker_mix_train")
TENSOR_NAMES = ("speaker_codes", "speaker_center", "speaker_basis", "speaker_scale", "speaker_code_var",
                "speaker_q_weight", "speaker_q_bias", "speaker_q_var")


@dataclass
class SpeakerCodes:
    names: list[str]          # training speakers, sorted
    codes: np.ndarray         # (S, d) one code per speaker
    center: np.ndarray        # (ka,) unweighted mean of the per-speaker means
    basis: np.ndarray         # (ka, d) orthonormal leading PCs of the per-speaker means
    scale: np.ndarray         # (d,) std of the projected means over speakers
    code_var: np.ndarray      # (d,) variance of the training rows' codes (the prior h(s) is taken from)
    q_weight: np.ndarray      # (ka, d) Q_s: ĥ @ W + b
    q_bias: np.ndarray        # (d,)
    q_var: np.ndarray         # (d,) residual variance of Q_s on the real rows

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    @classmethod
    def fit(cls, audio: np.ndarray, labels: np.ndarray, speakers: Sequence[str], dims: int) -> "SpeakerCodes":
        """Codes and Q_s from the real rows (``audio`` in the working space)."""
        x = np.asarray(audio, dtype=np.float64)
        spk = np.asarray([str(s) for s in speakers])
        names = sorted(set(spk.tolist()))
        if len(names) < 2:
            raise ConfigError(f"--speaker-dims: expected training data from at least 2 speakers (a code is where a "
                              f"speaker sits relative to the others), got {len(names)}; use --speaker-dims 0")
        resid = x.copy()
        for k in np.unique(labels):  # remove the class means: a code must not encode a speaker's label mix
            resid[labels == k] -= x[labels == k].mean(axis=0)
        idx = np.searchsorted(names, spk)
        means = np.stack([resid[idx == j].mean(axis=0) for j in range(len(names))])
        center = means.mean(axis=0)
        _, sing, vt = np.linalg.svd(means - center, full_matrices=False)
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])  # fixed sign: no flips between runs
        vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
        usable = int((sing > max(sing[0], 1e-12) * 1e-6).sum()) if len(sing) else 0
        d = max(1, min(int(dims), len(names) - 1, usable))
        if d < dims:
            log.info("--speaker-dims %d: %d training speakers span %d dims; using %d", dims, len(names), d, d)
        basis = vt[:d].T
        raw = (means - center) @ basis
        scale = raw.std(axis=0)
        scale = np.where(scale < 1e-12, 1.0, scale)
        codes = raw / scale
        rows = codes[idx]
        # Q_s: ridge regression of the row's code on the row (intercept unpenalised).
        xm, sm = x.mean(axis=0), rows.mean(axis=0)
        xc = x - xm
        w = np.linalg.solve(xc.T @ xc + _RIDGE * len(x) * np.eye(x.shape[1]), xc.T @ (rows - sm))
        b = sm - xm @ w
        q_var = np.maximum(((x @ w + b - rows) ** 2).mean(axis=0), _VAR_FLOOR)
        f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        return cls(names, f(codes), f(center), f(basis), f(scale), f(np.maximum(rows.var(axis=0), _VAR_FLOOR)), f(w),
                   f(b), f(q_var))

    def row_codes(self, speakers: Sequence[str]) -> np.ndarray:
        """(N, d) the code of each row's speaker (every speaker must be a training speaker)."""
        spk = np.asarray([str(s) for s in speakers])
        idx = np.searchsorted(self.names, spk)
        if len(spk) and (idx.max() >= len(self.names) or (np.asarray(self.names)[np.minimum(idx, len(self.names) - 1)]
                                                          != spk).any()):
            raise ConfigError(f"speaker codes: expected training speakers {self.names}, got others")
        return self.codes[idx]

    def q(self, h: torch.Tensor) -> torch.Tensor:
        """Q_s's mean prediction of the code for each row of ``h`` (differentiable in h)."""
        return h @ torch.from_numpy(self.q_weight) + torch.from_numpy(self.q_bias)

    def nll(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Per-row Gaussian -log Q(s | h) without its constant, averaged over code dims (the MI term)."""
        return (((self.q(h) - s) ** 2) / (2 * torch.from_numpy(self.q_var))).mean(dim=1)

    @torch.no_grad()
    def scores(self, h: torch.Tensor, s: torch.Tensor) -> dict[str, float]:
        """mi_s_nats (the Gaussian lower bound, summed over dims) and r2_s (share of code variance Q_s explains)."""
        mse = ((self.q(h) - s) ** 2).mean(dim=0).double().numpy()
        var, cvar = self.q_var.astype(np.float64), self.code_var.astype(np.float64)
        nll = 0.5 * np.log(2 * np.pi * var) + mse / (2 * var)
        h_s = 0.5 * np.log(2 * np.pi * np.e * cvar)
        return {"mi_s_nats": float((h_s - nll).sum()), "r2_s": float((1 - mse / cvar).mean())}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"speaker_codes": self.codes, "speaker_center": self.center, "speaker_basis": self.basis,
                "speaker_scale": self.scale, "speaker_code_var": self.code_var, "speaker_q_weight": self.q_weight,
                "speaker_q_bias": self.q_bias, "speaker_q_var": self.q_var}

    def config(self, requested_dims: int) -> dict[str, Any]:
        return {"speakers": list(self.names), "dims": self.dim, "requested_dims": int(requested_dims),
                "method": "class-centred per-speaker means in the working space, leading PCs, unit variance",
                "q_head": "ridge regression (frozen), Gaussian with its residual variance"}

    @classmethod
    def from_bundle(cls, bundle) -> "SpeakerCodes | None":
        """The codes of a loaded generator, or None for one without speaker codes."""
        info = bundle.config.get("speaker_code")
        if not info:
            return None
        t = bundle.tensors
        missing = [k for k in TENSOR_NAMES if k not in t]
        n, d = len(info["speakers"]), int(info["dims"])
        if missing or t["speaker_codes"].shape != (n, d) or t["speaker_q_weight"].shape[1] != d:
            raise ConfigError(f"generator: expected speaker codes of shape ({n}, {d}) and Q_s tensors, got "
                              f"{'missing ' + ', '.join(missing) if missing else t['speaker_codes'].shape}; "
                              "refit with `augment fit`")
        return cls(list(info["speakers"]), *(t[k] for k in TENSOR_NAMES))  # TENSOR_NAMES is in field order


def n_uniforms(n_speakers: int, k: int) -> int:
    """Uniforms one novel code takes: a sort key per speaker (which k), k weights, one stretch."""
    return n_speakers + k + 1


def novel_codes(codes: np.ndarray, u: np.ndarray, *, k: int, extrapolate: float) -> np.ndarray:
    """(n, d) novel codes from ``k`` distinct rows of ``codes`` and ``u`` (n, n_uniforms) in (0, 1)."""
    c = codes.astype(np.float64)
    n_spk = len(c)
    u = np.clip(np.asarray(u, dtype=np.float64), _U_EPS, 1 - _U_EPS)
    pick = np.argsort(u[:, :n_spk], axis=1, kind="stable")[:, :k]      # a uniform k-subset (sort keys)
    e = -np.log(u[:, n_spk:n_spk + k])                                   # Exp(1) -> normalised: Dirichlet(1)
    floor = min(_MIN_SHARE, 0.5 / k)
    w = floor + (1 - k * floor) * e / e.sum(axis=1, keepdims=True)
    mixed = np.einsum("nk,nkd->nd", w, c[pick])
    centre = c.mean(axis=0)
    stretch = 1 + extrapolate * u[:, n_spk + k:n_spk + k + 1]
    return (centre + stretch * (mixed - centre)).astype(np.float32)


def train_codes(codes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(n, d) the code of a uniformly drawn training speaker (first column of ``u``)."""
    idx = np.minimum((np.asarray(u[:, 0], dtype=np.float64) * len(codes)).astype(np.int64), len(codes) - 1)
    return codes[idx]


class CodedGenerator:
    """G with its speaker code drawn from the tail of z: ``(z, y, t) -> G(z[:, :noise], y, t, s(z[:, noise:]))``.

    Generation code draws z of width ``noise_dim + extra`` from its seeded streams, so a
    row's speaker code is as reproducible as its noise, with no other change to how shards
    are made. The tail is Gaussian; Φ maps it to the uniforms :func:`novel_codes` takes."""

    def __init__(self, generator, codes: SpeakerCodes, *, noise_dim: int, mode: str, k: int, extrapolate: float):
        if mode == "novel" and not 2 <= k <= len(codes.names):
            raise ConfigError(f"--speaker-mix: expected 2 to {len(codes.names)} (the generator's training speakers), "
                              f"got {k}")
        self.generator, self.codes, self.noise_dim = generator, codes, int(noise_dim)
        self.mode, self.k, self.extrapolate = mode, int(k), float(extrapolate)
        self.extra = n_uniforms(len(codes.names), self.k) if mode == "novel" else 1

    def speaker_codes(self, z_tail: torch.Tensor) -> np.ndarray:
        u = torch.special.ndtr(z_tail.double()).numpy()
        if self.mode == "novel":
            return novel_codes(self.codes.codes, u, k=self.k, extrapolate=self.extrapolate)
        return train_codes(self.codes.codes, u)

    def __call__(self, z: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        s = torch.from_numpy(self.speaker_codes(z[:, self.noise_dim:]))
        return self.generator(z[:, :self.noise_dim], y, t, s)


def prepare_generation(bundle, spec, gc) -> tuple[Any, Any, dict[str, Any] | None]:
    """For a speaker-aware generator: a copy of ``bundle`` whose generator draws its speaker code
    from the tail of z (:class:`CodedGenerator`), ``spec`` with that wider noise, and the run
    record of the speaker settings (``gc``: a GenerateConfig). Others: unchanged, and None."""
    import dataclasses

    codes = SpeakerCodes.from_bundle(bundle)
    if codes is None:
        return bundle, spec, None
    coded = CodedGenerator(bundle.generator, codes, noise_dim=spec.noise_dim, mode=gc.speaker_codes,
                           k=gc.speaker_mix, extrapolate=gc.speaker_extrapolate)
    record = {"codes": gc.speaker_codes, **({"mix": gc.speaker_mix, "extrapolate": gc.speaker_extrapolate}
                                            if gc.speaker_codes == "novel" else {})}
    return (dataclasses.replace(bundle, generator=coded), dataclasses.replace(spec, noise_dim=spec.noise_dim + coded.extra),
            record)
