"""augment: MI-regularised InfoGAN feature generator and MI-scored synthetic shards.

Public API (imported lazily, so ``import augment`` loads no torch)::

    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate          # ``augment.generate`` is the module
    from mirage.augment import fit_generator, read_manifest, inspect_shards, GenerateResult
"""

from __future__ import annotations

__all__ = ["fit_generator", "GenerateResult", "read_manifest", "inspect_shards"]

_WHERE = {"fit_generator": "mirage.augment.fit", "GenerateResult": "mirage.augment.generate",
          "read_manifest": "mirage.augment.shards", "inspect_shards": "mirage.augment.inspect"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'augment' has no attribute {name!r}")
