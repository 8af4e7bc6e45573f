"""The real training set of a generator: items selected from a store, standardised features,
label indices and text identities."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError, StoreCorruptError
from mirage.featstore.standardize import Standardizer, floored_scale

log = logging.getLogger(__name__)

MODES = ("ser", "multimodal")


@dataclass
class FeatureTransform:
    """Standardise, then project on the leading principal components and whiten them.

    The GAN lives in this k-dim space: generated samples are mapped back through the
    basis, so they stay in the span of the real data (a G free to put energy in the
    near-null directions of real features produces samples a linear probe tells apart
    from real ones), and the networks get smaller when features are wide. With
    ``var_kept >= 1`` the transform is plain standardisation (k = D, identity basis).
    """

    mean: np.ndarray            # (D,)
    std: np.ndarray             # (D,)
    basis: np.ndarray | None = None   # (D, k) orthonormal columns, or None for no projection
    scale: np.ndarray | None = None   # (k,) sqrt of the component variances

    @classmethod
    def fit(cls, x: np.ndarray, *, var_kept: float = 1.0, max_dim: int | None = None) -> "FeatureTransform":
        x64 = np.asarray(x, dtype=np.float64)
        mean = x64.mean(axis=0)
        std = floored_scale(mean, x64.std(axis=0))
        if var_kept >= 1.0:
            return cls(mean.astype(np.float32), std.astype(np.float32))
        z = (x64 - mean) / std
        _, sing, vt = np.linalg.svd(z, full_matrices=False)
        var = sing ** 2 / max(1, len(z) - 1)
        # Sign convention: largest |loading| positive, so the basis does not flip between runs.
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
        usable = var > var[0] * 1e-8 if len(var) else np.zeros(0, dtype=bool)
        k = int(np.searchsorted(np.cumsum(var) / var.sum(), var_kept) + 1) if var.sum() > 0 else 1
        k = max(1, min(k, int(usable.sum()) or 1, max_dim or k))
        return cls(mean.astype(np.float32), std.astype(np.float32), vt[:k].T.astype(np.float32),
                   np.sqrt(var[:k]).astype(np.float32))

    @property
    def dim(self) -> int:
        return len(self.mean) if self.basis is None else self.basis.shape[1]

    @property
    def standardizer(self) -> Standardizer:
        return Standardizer(self.mean, self.std)

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = self.standardizer.transform(x)
        if self.basis is not None:
            z = (z @ self.basis) / self.scale
        return z.astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if self.basis is not None:
            z = (z * self.scale) @ self.basis.T
        return self.standardizer.inverse(z)

    def tensors(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}_mean": self.mean, f"{prefix}_std": self.std}
        if self.basis is not None:
            out.update({f"{prefix}_basis": self.basis, f"{prefix}_scale": self.scale})
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], prefix: str) -> "FeatureTransform":
        return cls(tensors[f"{prefix}_mean"], tensors[f"{prefix}_std"], tensors.get(f"{prefix}_basis"),
                   tensors.get(f"{prefix}_scale"))


@dataclass
class TrainingData:
    """Everything a fit needs from the store, already selected and standardised."""

    audio: np.ndarray                 # (N, ka) in the model space (see FeatureTransform)
    labels: np.ndarray                # (N,) int64 index into label_names
    label_names: list[str]
    items: pd.DataFrame               # utt_id, speaker, label, text of the N rows
    audio_norm: FeatureTransform
    text_raw: np.ndarray | None = None    # (N, Dt) as stored (the text codes G is conditioned on)
    text: np.ndarray | None = None        # (N, kt) in the model space
    text_norm: FeatureTransform | None = None
    text_ids: np.ndarray | None = None    # (N,) int64: rows with identical text share an id
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def use_text(self) -> bool:
        return self.text is not None

    @property
    def prior(self) -> np.ndarray:
        counts = np.bincount(self.labels, minlength=len(self.label_names)).astype(np.float64)
        return counts / counts.sum()

    @property
    def speakers(self) -> list[str]:
        return sorted(self.items["speaker"].astype(str).unique().tolist())


def text_identities(text: np.ndarray, strings=None) -> np.ndarray:
    """Row -> id such that utterances of the same sentence share an id.

    The transcript string decides where there is one: an encoder's output for the same
    sentence can differ in the last bits with the batch it was embedded in (EmoDB's 10
    sentences gave 18 distinct MiniLM vectors). Rows without a transcript fall back to the
    embedding's bytes.
    """
    rows = np.ascontiguousarray(text)
    keys = []
    for i in range(len(rows)):
        s = "" if strings is None else str(strings[i]).strip()
        keys.append("s:" + s if s else "b:" + hashlib.sha1(rows[i].tobytes()).hexdigest())
    codes, _ = pd.factorize(pd.Series(keys), sort=True)
    return codes.astype(np.int64)


def _labelled(items: pd.DataFrame, url: str) -> pd.Series:
    if "label" not in items.columns:
        raise ConfigError(f"{url}: expected a store with emotion labels, got an item table without a 'label' column; "
                          "extract a labelled corpus first")
    label = items["label"].astype("string").fillna("").str.strip()
    ok = (label != "") & (label.str.lower() != "nan")
    if not ok.any():
        raise ConfigError(f"{url}: expected a store with emotion labels, got {len(items)} items none of which has a label; "
                          "augment needs a labelled corpus")
    return ok


def load_training_data(store, *, mode: str = "ser", use_text: bool | None = None, exclude_speakers=(),
                       include_utt_ids=None, storage_options: dict | None = None, pca_var: float = 1.0,
                       pca_max_dim: int | None = None) -> TrainingData:
    """Read the items a generator is trained on.

    ``mode``: "ser" (text-free conditioning c = y unless ``use_text`` is True) or
    "multimodal" (c = (y, t); text required; the generator also predicts t').
    """
    from mirage.featstore.store import opened

    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    with opened(store, storage_options) as fs:
        from mirage.featstore.kinds import require_features

        require_features(fs)
        return _load(fs, mode=mode, use_text=use_text, exclude_speakers=exclude_speakers, include_utt_ids=include_utt_ids,
                     pca_var=pca_var, pca_max_dim=pca_max_dim)


def _load(fs, *, mode, use_text, exclude_speakers, include_utt_ids, pca_var, pca_max_dim) -> TrainingData:
    from mirage.augment.counts import parse_speakers

    url = fs.url
    items = fs.items
    has_label = _labelled(items, url)
    label_names = sorted(items.loc[has_label, "label"].astype(str).unique().tolist())
    has_text = fs.has("text")
    if mode == "multimodal" and not has_text:
        raise ConfigError(f"--mode multimodal: expected a store with text embeddings, {url} has none; "
                          "use --mode ser or extract with a text encoder")
    if mode == "multimodal" and use_text is False:
        raise ConfigError("--no-text: multimodal generators are conditioned on text; use --mode ser for text-free conditioning")
    if use_text and not has_text:
        raise ConfigError(f"--text: expected a store with text embeddings to condition on, {url} has none; "
                          "drop --text (text-free conditioning) or extract with a text encoder")
    # ser generators are text-free unless asked: on EmoDB (10 sentences shared by all emotions)
    # conditioning on the sentence cost 4.5 UAR points under LOSO, text-free gained 0.8.
    use_text = (mode == "multimodal") if use_text is None else bool(use_text)

    keep = has_label.to_numpy().copy()
    excluded = parse_speakers(exclude_speakers)
    if excluded:
        speakers = items["speaker"].astype(str)
        unknown = sorted(set(excluded) - set(speakers))
        if unknown:
            log.warning("--exclude-speakers: %s not in %s", ",".join(unknown), url)
        keep &= ~speakers.isin(excluded).to_numpy()
    if include_utt_ids is not None:
        wanted = set(map(str, include_utt_ids))
        keep &= items["utt_id"].astype(str).isin(wanted).to_numpy()
    sel = items[keep].sort_values("utt_id", kind="stable").reset_index(drop=True)
    if len(sel) < 2:
        raise ConfigError(f"{url}: expected at least 2 labelled training items after the speaker/item selection, got {len(sel)}")
    rows = sel["row"].to_numpy()

    audio = fs.read("audio", rows).astype(np.float32)
    text_raw = fs.read("text", rows).astype(np.float32) if use_text else None
    for name, arr in (("audio", audio), ("text", text_raw)):
        if arr is not None and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr).all(axis=1)).sum())
            raise StoreCorruptError(f"{url}: expected finite {name} features, got {bad} rows with NaN/inf; "
                                    f"run `featstore verify {url}` and re-extract")
    audio_norm = FeatureTransform.fit(audio, var_kept=pca_var, max_dim=pca_max_dim)
    text_norm = FeatureTransform.fit(text_raw, var_kept=pca_var, max_dim=pca_max_dim) if text_raw is not None else None
    labels = pd.Categorical(sel["label"].astype(str), categories=label_names).codes.astype(np.int64)
    meta = fs.metadata
    text_col = sel["text"].fillna("").astype(str) if "text" in sel.columns else pd.Series([""] * len(sel))
    return TrainingData(
        audio=audio_norm.forward(audio), labels=labels, label_names=label_names,
        items=pd.DataFrame({"utt_id": sel["utt_id"].astype(str), "speaker": sel["speaker"].astype(str),
                            "label": sel["label"].astype(str), "text": text_col.fillna("")}),
        audio_norm=audio_norm, text_raw=text_raw,
        text=text_norm.forward(text_raw) if text_norm is not None else None, text_norm=text_norm,
        text_ids=text_identities(text_raw, text_col.fillna("").tolist()) if text_raw is not None else None,
        source={"url": url, "content_hash": meta.get("content_hash") or fs.content_hash(), "corpus": meta.get("corpus"),
                "extractors": meta.get("extractors", {}), "n_items": int(fs.n_items),
                "dims": {"audio": fs.dim("audio"), "text": fs.dim("text") if has_text else None}},
    )
