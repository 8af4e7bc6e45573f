"""mirage: a feature store and MI-regularised generative augmentation for speech emotion recognition.

The small Python API, one call per step of the pipeline (each the library function behind
the matching command, returning a result object); nothing is imported until a call:

>>> import mirage
>>> res = mirage.extract("emodb", root="../shared/corpora/emodb", store="emodb.zarr", text_model="none")
>>> gen = mirage.fit_generator("emodb.zarr", "gen/")           # a FittedGenerator
>>> batch = gen.sample(16, labels="angry")                      # in memory, store space
>>> mirage.generate("gen/", "synth/", n="4x", min_mi=0.6)
>>> mirage.fit("emodb.zarr", "runs/r1", evaluation="loso").metrics["uar_mean"]
>>> mirage.compare("emodb.zarr", "runs/cmp", methods="none,infogan").table
>>> cfg = mirage.CompareConfig(methods="none,infogan", n="1x", normalise="speaker")
>>> mirage.compare("emodb.zarr", "runs/cmp2", cfg, runtime=mirage.Runtime(workers=2))
>>> mirage.predict("runs/r1", "emodb.zarr", "pred.parquet")    # after fit(..., final=True)
"""

from __future__ import annotations

__all__ = ["extract", "fit_generator", "generate", "fit", "compare", "predict", "FittedGenerator", "Runtime",
           "ExtractConfig", "FitConfig", "GenerateConfig", "ClassifierConfig", "CompareConfig"]


def extract(corpus, **kwargs):
    """``featstore extract``; returns an ``ExtractResult`` (``.store`` is the finished store)."""
    from mirage.featstore.extract import extract as _extract

    return _extract(corpus, **kwargs)


def fit_generator(store, out_dir, **kwargs):
    """``augment fit``; returns a :class:`FittedGenerator` for the written checkpoint."""
    from mirage.augment.fit import fit_generator as _fit
    from mirage.augment.sampler import FittedGenerator

    return FittedGenerator(str(_fit(store, out_dir, **kwargs)), kwargs.get("storage_options"))


def generate(model_dir, out_dir, **kwargs):
    """``augment generate``; returns a ``GenerateResult``."""
    from mirage.augment.generate import generate as _generate

    return _generate(str(getattr(model_dir, "model_dir", model_dir)), out_dir, **kwargs)


def fit(store, out, **kwargs):
    """``train fit``; returns a ``FitResult`` (``.metrics`` is metrics.json)."""
    from mirage.train.fit import fit as _fit

    return _fit(store, out, **kwargs)


def compare(store, out, **kwargs):
    """``train compare``; returns a ``CompareResult`` (``.table``: method -> statistics)."""
    from mirage.train.compare import compare as _compare

    return _compare(store, out, **kwargs)


def predict(model, store, out, **kwargs):
    """``train predict --store``; returns the predictions table (also written to ``out``)."""
    from mirage.train.final import predict_store

    return predict_store(model, store, out, **kwargs)


#: The settings and runtime objects the calls take (``config=``, ``runtime=``), imported on first use.
_LAZY = {"FittedGenerator": "mirage.augment.sampler", "Runtime": "mirage.featstore.runtime",
         "ExtractConfig": "mirage.featstore.extract_config", "FitConfig": "mirage.augment.config",
         "GenerateConfig": "mirage.augment.config", "ClassifierConfig": "mirage.train.classifier",
         "CompareConfig": "mirage.train.compare_config"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mirage' has no attribute {name!r}")
