"""``hf-audio``: any ``transformers`` audio encoder, by hub id or local folder.

The family comes from ``AutoConfig`` (``model_type``); inputs from ``AutoFeatureExtractor``
(raw waves for wav2vec2/HuBERT/WavLM/data2vec, Kaldi fbanks for AST, log-mels for
Whisper); the network from ``AutoModel`` (the encoder of an encoder-decoder model).

- ``layer``: None = the model's final output (``last_hidden_state``, after any final norm);
  0..L = ``hidden_states[layer]`` (0 = the input to the first block, L = number of blocks);
  "all" = every hidden state, pooled, as (B, L+1, D) (``audio`` then holds state L).
- ``pooling``: "mean" = masked mean over frames, "meanstd" = masked mean and std.
  Frame masks come from the sample-level attention mask through the model's own
  ``_get_feature_vector_attention_mask``, so padding never changes an item's vector.
  Models whose feature extractor asks for no attention mask (group-norm wav2vec2-base and
  kin) are run one utterance at a time instead, for the same reason.
- AST: the mean runs over patch tokens only; the CLS and distillation tokens are left
  out. AST pads/truncates each clip to its fixed ``max_length`` (10.24 s for the AudioSet
  checkpoints) on its own, so its vectors do not depend on the batch either; padding
  patches are part of every clip's mean, and audio past ``max_length`` is not seen.
- Whisper: the encoder only; each clip is padded to 30 s by its feature extractor and
  the mean covers the encoder frames of the real audio.
- Long clips (raw-wave models): a clip longer than ``LONG_CLIP_WINDOW_S`` is cut into equal
  windows of at most that length, each encoded on its own, and the windows' pooled statistics
  are merged weighted by their frame counts (the same mean, and the same population std, as
  pooling all frames at once). Self-attention then spans one window, not the whole clip: a
  10-minute recording costs the memory of one window instead of growing quadratically with
  its length. Shorter clips are untouched.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mirage.featstore.extractors import _hf
from mirage.featstore.extractors.base import AudioExtractor
from mirage.featstore.extractors.pooling import check_pooling, lengths_to_mask, masked_pool

log = logging.getLogger(__name__)

#: model_type -> number of leading non-frame tokens (CLS, distillation) left out of pooling.
PREFIX_TOKENS = {"audio-spectrogram-transformer": 2}
#: feature extractors that pad every clip to a fixed length themselves (Whisper: 30 s)
FIXED_LENGTH = {"whisper"}
#: raw-wave encoders see at most this many seconds at once (longer clips are windowed)
LONG_CLIP_WINDOW_S = 30.0


class HFAudioExtractor(AudioExtractor):
    name = "hf-audio"
    _heavy = ("_fe", "_net")

    def __init__(
        self,
        model: str,
        layer: int | None = None,
        pooling: str | None = None,
        device: str = "cpu",
        revision: str | None = None,
    ):
        self.model = _hf.normalise_model(model)
        self.layer = layer
        self.pooling = check_pooling(pooling or "mean")
        self.device = device
        self.revision = revision
        self._meta: dict[str, Any] | None = None
        self._fe = None
        self._net = None

    def __getstate__(self):
        return _hf.dropped_state(self, self._heavy)

    # -- description (config files only, never weights) -------------------------------
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            from transformers import AutoConfig, AutoFeatureExtractor

            cfg = _hf.load_pretrained(AutoConfig, self.model, self.revision, "audio")
            n_layers = _hf.num_layers(cfg)
            if self.layer != "all":
                _hf.check_layer(self.layer, n_layers, "--audio-layer")
            self._fe = _hf.load_pretrained(AutoFeatureExtractor, self.model, self.revision, "audio")
            sr = getattr(self._fe, "sampling_rate", None)
            if not sr:
                raise _hf.missing_model(self.model, "audio", ValueError("feature extractor has no sampling_rate"))
            self._meta = {
                "model_type": cfg.model_type,
                "revision": _hf.resolved_revision(self.model, cfg, self.revision),
                "n_layers": n_layers,
                "hidden_size": _hf.hidden_size(cfg),
                "sample_rate": int(sr),
            }
        return self._meta

    def config(self) -> dict[str, Any]:
        m = self.meta()
        return {
            "extractor": self.name,
            "model": self.model,
            "revision": m["revision"],
            "model_type": m["model_type"],
            "layer": self.layer,
            "pooling": self.pooling,
            "sample_rate": m["sample_rate"],
            "dim": self.dim,
            **({"n_layer_states": m["n_layers"] + 1} if self.layer == "all" else {}),
        }

    @property
    def stored_layer(self) -> int | None:
        """Hidden state kept as the 2-D ``audio`` array when every layer is kept."""
        return self.meta()["n_layers"] if self.layer == "all" else self.layer

    @property
    def layer_states_shape(self) -> tuple[int, int] | None:
        return (self.meta()["n_layers"] + 1, self.dim) if self.layer == "all" else None

    @property
    def dim(self) -> int:
        return self.meta()["hidden_size"] * (2 if self.pooling == "meanstd" else 1)

    @property
    def sample_rate(self) -> int:
        return self.meta()["sample_rate"]

    # -- weights -----------------------------------------------------------------------
    def load(self) -> None:
        if self._net is not None:
            return
        from transformers import AutoFeatureExtractor, AutoModel

        meta = self.meta()
        if self._fe is None:
            self._fe = _hf.load_pretrained(AutoFeatureExtractor, self.model, self.revision, "audio")
        net = _hf.load_pretrained(AutoModel, self.model, self.revision, "audio", **_hf.float32())
        if getattr(net.config, "is_encoder_decoder", False) and hasattr(net, "get_encoder"):
            net = net.get_encoder()
        self._net = net.eval().to(self.device)
        log.info("loaded %s (%s, %d layers) on %s", self.model, meta["model_type"], meta["n_layers"], self.device)

    @property
    def _uses_mask(self) -> bool:
        return bool(getattr(self._fe, "return_attention_mask", False))

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        self.load()
        if not waves:
            return np.zeros((0, self.dim), dtype=np.float32)
        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        with torch.inference_mode():
            if self.meta()["model_type"] in PREFIX_TOKENS.keys() | FIXED_LENGTH:
                out = self._embed_batch(waves)  # the feature extractor fixes the length itself
            elif self._uses_mask:
                out = self._embed_long_aware(waves)
            else:  # no attention mask: padding would leak into the vectors, so go one by one
                out = torch.cat([self._embed_long_aware([w]) for w in waves])
        return out.cpu().numpy().astype(np.float32, copy=False)

    def _embed_long_aware(self, waves: list[np.ndarray]):
        """``_embed_batch`` for the clips that fit one window; windowed encoding for the others."""
        import torch

        limit = int(LONG_CLIP_WINDOW_S * self.sample_rate)
        long = [i for i, w in enumerate(waves) if len(w) > limit]
        if not long:
            return self._embed_batch(waves)
        rows: dict[int, Any] = {i: self._embed_long(waves[i], limit) for i in long}
        short = [i for i in range(len(waves)) if i not in rows]
        if short:
            for i, row in zip(short, self._embed_batch([waves[i] for i in short])):
                rows[i] = row
        return torch.stack([rows[i] for i in range(len(waves))])

    def _embed_long(self, wave: np.ndarray, limit: int):
        """One long clip: equal windows of at most ``limit`` samples, pooled statistics merged by frame count."""
        import torch

        n_win = -(-len(wave) // limit)
        bounds = np.linspace(0, len(wave), n_win + 1).round().astype(int)
        pooled, frames = [], []
        for a, b in zip(bounds[:-1], bounds[1:]):
            pooled.append(self._embed_batch([wave[a:b]])[0])
            frames.append(float(self._frames(b - a)))
        w = torch.tensor(frames, dtype=pooled[0].dtype, device=pooled[0].device)
        w = (w / w.sum()).view(-1, *([1] * pooled[0].dim()))
        stacked = torch.stack(pooled)
        if self.pooling == "mean":
            return (stacked * w).sum(0)
        d = stacked.shape[-1] // 2
        mean_i, std_i = stacked[..., :d], stacked[..., d:]
        mean = (mean_i * w).sum(0)
        second = ((std_i ** 2 + mean_i ** 2) * w).sum(0)
        return torch.cat([mean, (second - mean ** 2).clamp_min(0.0).sqrt()], dim=-1)

    def _frames(self, n_samples: int) -> int:
        """Encoder frames of ``n_samples`` of audio (the model's own formula where it has one)."""
        import torch

        lengths = getattr(self._net, "_get_feat_extract_output_lengths", None)
        if lengths is not None:
            return int(lengths(torch.tensor([n_samples]))[0])
        return max(1, n_samples)

    def _embed_batch(self, waves: list[np.ndarray]):
        import torch

        kwargs = {} if self.meta()["model_type"] in FIXED_LENGTH else {"padding": True}
        inputs = self._fe(
            waves,
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            return_attention_mask=True,
            **kwargs,
        )
        sample_mask = inputs.pop("attention_mask", None)
        model_inputs = {k: v.to(self.device) for k, v in inputs.items() if hasattr(v, "to")}
        if sample_mask is not None and self._uses_mask:
            model_inputs["attention_mask"] = sample_mask.to(self.device)
        out = self._net(**model_inputs, output_hidden_states=self.layer is not None, return_dict=True)
        skip = PREFIX_TOKENS.get(self.meta()["model_type"], 0)
        if self.layer == "all":
            mask = self._frame_mask(out.hidden_states[0].shape[1] - skip, sample_mask, len(waves))
            return torch.stack([masked_pool(s[:, skip:].float(), mask, self.pooling) for s in out.hidden_states], dim=1)
        states = out.last_hidden_state if self.layer is None else out.hidden_states[self.layer]
        states = states[:, skip:]
        mask = self._frame_mask(states.shape[1], sample_mask, len(waves))
        return masked_pool(states.float(), mask, self.pooling)

    def _frame_mask(self, n_frames: int, sample_mask, batch: int):
        import torch

        if sample_mask is None or self.meta()["model_type"] in PREFIX_TOKENS:
            return torch.ones(batch, n_frames, dtype=torch.bool, device=self.device)
        sample_mask = sample_mask.to(self.device)
        if hasattr(self._net, "_get_feature_vector_attention_mask"):
            return self._net._get_feature_vector_attention_mask(n_frames, sample_mask).bool()
        # generic fallback (e.g. Whisper's mel-frame mask): scale the valid length
        total = sample_mask.shape[1]
        lengths = torch.ceil(sample_mask.sum(1).double() * n_frames / total).long().clamp(1, n_frames)
        return lengths_to_mask(lengths, n_frames)
