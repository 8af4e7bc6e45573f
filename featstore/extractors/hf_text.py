"""``hf-text``: any ``transformers`` text encoder (BERT, RoBERTa, ...), by hub id or folder.

``AutoTokenizer`` + ``AutoModel`` (the encoder of an encoder-decoder model); transcripts
are truncated at the model's maximum length (the tokenizer's ``model_max_length``, the
position table, or ``max_seq_length`` of a sentence-transformers folder, whichever is
smallest). ``layer``: None = ``last_hidden_state``, 0..L = ``hidden_states[layer]``.
``pooling``: "mean" / "meanstd" over non-padding tokens (special tokens included, as
sentence-transformers does), or "cls" = the first token. Empty or missing transcripts are
embedded as "" (never an error).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mirage.featstore.extractors import _hf
from mirage.featstore.extractors.base import TextExtractor
from mirage.featstore.extractors.pooling import POOLINGS, check_pooling, masked_pool

log = logging.getLogger(__name__)

TEXT_POOLINGS = (*POOLINGS, "cls")
#: fast (Rust) tokenizers fail with "Already borrowed" when one instance is called from
#: several threads at once (threaded Dask workers share one loaded extractor)
_TOKENIZE_LOCK = threading.Lock()
_NO_LIMIT = 1_000_000


class HFTextExtractor(TextExtractor):
    name = "hf-text"
    #: L2-normalise the pooled vector (sentence-embedding models)
    normalize = False
    _heavy = ("_tok", "_net")

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
        self.pooling = check_pooling(pooling or "mean", TEXT_POOLINGS)
        self.device = device
        self.revision = revision
        self._meta: dict[str, Any] | None = None
        self._tok = None
        self._net = None

    def __getstate__(self):
        return _hf.dropped_state(self, self._heavy)

    def source(self) -> str:
        """Where the files are read from (a subclass may point into a package)."""
        return self.model

    # -- description (config and tokenizer files, never weights) -------------------------
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            from transformers import AutoConfig

            src = self.source()
            cfg = _hf.load_pretrained(AutoConfig, src, self.revision, "text")
            n_layers = _hf.num_layers(cfg)
            _hf.check_layer(self.layer, n_layers, "--text-layer")
            self._load_tokenizer()
            self._meta = {
                "model_type": cfg.model_type,
                "revision": self.resolved_revision(cfg),
                "n_layers": n_layers,
                "hidden_size": _hf.hidden_size(cfg),
                "max_length": self._max_length(cfg),
            }
        return self._meta

    def resolved_revision(self, hf_config) -> str | None:
        return _hf.resolved_revision(self.source(), hf_config, self.revision)

    def _load_tokenizer(self) -> None:
        if self._tok is None:
            from transformers import AutoTokenizer

            tok = _hf.load_pretrained(AutoTokenizer, self.source(), self.revision, "text")
            if tok.pad_token is None:  # decoder-only tokenizers (GPT-2) have none
                tok.pad_token = tok.eos_token or tok.unk_token
            self._tok = tok

    def _max_length(self, hf_config) -> int:
        limits = [int(self._tok.model_max_length) if self._tok.model_max_length < _NO_LIMIT else _NO_LIMIT]
        positions = getattr(hf_config, "max_position_embeddings", None)
        if isinstance(positions, int):
            # RoBERTa-style tables start after padding_idx, so two slots are unusable
            offset = 2 if "roberta" in hf_config.model_type or hf_config.model_type == "camembert" else 0
            limits.append(positions - offset)
        st = Path(self.source()) / "sentence_bert_config.json"
        if st.is_file():
            limits.append(int(json.loads(st.read_text()).get("max_seq_length", _NO_LIMIT)))
        return min(limits) if min(limits) < _NO_LIMIT else 512

    def config(self) -> dict[str, Any]:
        m = self.meta()
        return {
            "extractor": self.name,
            "model": self.model,
            "revision": m["revision"],
            "model_type": m["model_type"],
            "layer": self.layer,
            "pooling": self.pooling,
            "max_length": m["max_length"],
            "normalize": self.normalize,
            "dim": self.dim,
        }

    @property
    def dim(self) -> int:
        return self.meta()["hidden_size"] * (2 if self.pooling == "meanstd" else 1)

    # -- weights -----------------------------------------------------------------------
    def load(self) -> None:
        if self._net is not None:
            return
        from transformers import AutoModel

        meta = self.meta()
        self._load_tokenizer()
        net = _hf.load_pretrained(AutoModel, self.source(), self.revision, "text", **_hf.float32())
        if getattr(net.config, "is_encoder_decoder", False) and hasattr(net, "get_encoder"):
            net = net.get_encoder()
        self._net = net.eval().to(self.device)
        log.info("loaded %s (%s, %d layers) on %s", self.model, meta["model_type"], meta["n_layers"], self.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
        with _TOKENIZE_LOCK:
            enc = self._tok(
                texts,
                padding=True,
                truncation=True,
                max_length=self.meta()["max_length"],
                return_tensors="pt",
            )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self._net(**enc, output_hidden_states=self.layer is not None, return_dict=True)
            states = (out.last_hidden_state if self.layer is None else out.hidden_states[self.layer]).float()
            if self.pooling == "cls":
                pooled = states[:, 0]
            else:
                pooled = masked_pool(states, enc["attention_mask"].bool(), self.pooling)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)
