"""Corpus adapters: each corpus's native layout -> one item table.

``get_corpus("emodb").load_items("/data/emodb")`` returns the table described in
:mod:`featstore.items`. Adapter modules are imported when first asked for.
"""

from __future__ import annotations

import importlib
import inspect

from mirage.featstore.corpora.base import Corpus
from mirage.featstore.errors import ConfigError, UnknownNameError

__all__ = ["Corpus", "get_corpus", "list_corpora", "corpus_names"]

#: registry name -> (module, class); one module per corpus.
_REGISTRY: dict[str, tuple[str, str]] = {
    "demo": ("mirage.featstore.corpora.demo", "DemoCorpus"),
    "msp-podcast": ("mirage.featstore.corpora.msp_podcast", "MSPPodcastCorpus"),
    "iemocap": ("mirage.featstore.corpora.iemocap", "IEMOCAPCorpus"),
    "msp-improv": ("mirage.featstore.corpora.msp_improv", "MSPImprovCorpus"),
    "emodb": ("mirage.featstore.corpora.emodb", "EmoDBCorpus"),
    "ravdess": ("mirage.featstore.corpora.ravdess", "RAVDESSCorpus"),
    "crema-d": ("mirage.featstore.corpora.crema_d", "CremaDCorpus"),
    "csv": ("mirage.featstore.corpora.csv_table", "CSVCorpus"),
}


def corpus_names() -> list[str]:
    """Registered corpus names, in listing order."""
    return list(_REGISTRY)


def _canonical(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def get_corpus(name: str, **kwargs) -> Corpus:
    """The adapter registered as ``name`` (case and ``_``/``-`` insensitive).

    ``kwargs`` go to the adapter's constructor (e.g. ``get_corpus("demo", n_speakers=4)``).
    """
    key = _canonical(name)
    if key == "cremad":
        key = "crema-d"
    if key not in _REGISTRY:
        raise UnknownNameError(
            f"expected a corpus name in {', '.join(_REGISTRY)}, got {name!r}; "
            "pick one of those ('csv' reads your own table)")
    module, cls_name = _REGISTRY[key]
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError:
        params = [p for p in inspect.signature(cls).parameters]
        raise ConfigError(f"{key}: expected options among {params or 'none'}, got {sorted(kwargs)}; "
                          "drop the others") from None
    return cls(**kwargs)


def list_corpora() -> list[Corpus]:
    """One default-constructed adapter per registered corpus."""
    return [get_corpus(name) for name in _REGISTRY]
