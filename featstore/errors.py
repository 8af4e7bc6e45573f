"""Typed errors. Each subclasses MirageError and the builtin a caller would expect.

Messages follow "expected X, got Y; do Z" so the CLI can print them as one line.
"""

from __future__ import annotations


class MirageError(Exception):
    """Base class of every error mirage raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(MirageError, ValueError):
    """A flag, argument or config value is invalid."""


class MissingDependencyError(MirageError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


class CorpusNotFoundError(MirageError, FileNotFoundError):
    """A corpus root, label file or audio file is missing."""


class CorpusFormatError(MirageError, ValueError):
    """A label/metadata file is malformed; the message names the file and line."""


class UnknownNameError(MirageError, KeyError):
    """An unknown corpus, extractor, pooling mode, ... was asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadAudioError(MirageError, ValueError):
    """An audio file cannot be used (unreadable, empty, silent, too short).

    ``reason`` is a short machine-readable code, the message a human-readable one.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class StoreNotFoundError(MirageError, FileNotFoundError):
    """No feature store (or shard manifest) at the given path."""


class StoreExistsError(MirageError, FileExistsError):
    """A store exists at the path and was made with different settings."""


class StoreLockedError(MirageError, RuntimeError):
    """Another process is writing the store."""


class StoreIncompleteError(MirageError, RuntimeError):
    """The store was not finished (an extraction was interrupted); rerun the same command to resume."""


class StoreCorruptError(MirageError, RuntimeError):
    """The store's contents do not match its metadata."""


class CheckpointError(MirageError, ValueError):
    """A generator checkpoint is damaged or was altered after it was written (its files do not
    match the checksums recorded beside them, or cannot be parsed)."""


class TrainingDivergedError(MirageError, FloatingPointError):
    """A loss became NaN/inf or exploded during training."""


class LeakageError(MirageError, ValueError):
    """Synthetic data was made by a generator that saw a test speaker of the fold."""


class ObjectStoreError(MirageError, OSError):
    """An object store cannot be used: unreachable, no such bucket, missing/wrong credentials."""


class ClusterError(MirageError, RuntimeError):
    """The Dask cluster failed under a run (workers died, scheduler gone)."""
