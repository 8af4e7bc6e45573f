"""Evaluation folds (leave-one-speaker-out, leave-one-session-out, official split) and the
leakage check of synthetic shards against a fold's test speakers.

Folds index the real store's item table by position. ``loso`` leaves one speaker out per
fold — or one session for IEMOCAP (items with a ``session`` column and corpus metadata
naming iemocap), whose sessions each hold two speakers. ``official`` trains on the items
whose split is ``train`` and tests on each split named ``test*`` (one fold per test split);
``dev`` items are left out because nothing here selects models on them.

Stores extracted with augmented views (``featstore extract --views``) hold one row per item
and view; every view shares its source's speaker (and split), so a fold trains on all views of
its training speakers and never on a test speaker's. Test sets hold the clean rows only (all
rows when the store has no clean view) and labelled rows only; ``train fit --test-views``
evaluates other views of the test items separately.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError, LeakageError

log = logging.getLogger(__name__)

SCHEMES = ("loso", "official")


@dataclass(frozen=True)
class Fold:
    name: str
    test_speakers: tuple[str, ...]
    train: np.ndarray  # positions into the item table
    test: np.ndarray


def corpus_name(metadata: dict[str, Any]) -> str:
    corpus = metadata.get("corpus")
    if isinstance(corpus, dict):
        corpus = corpus.get("name") or corpus.get("corpus")
    return str(corpus or "").lower()


def group_column(items: pd.DataFrame, metadata: dict[str, Any]) -> str:
    """``session`` for IEMOCAP stores that carry sessions, else ``speaker``."""
    if "session" in items.columns and "iemocap" in corpus_name(metadata):
        return "session"
    return "speaker"


def make_folds(items: pd.DataFrame, metadata: dict[str, Any], scheme: str = "loso") -> list[Fold]:
    if scheme not in SCHEMES:
        raise ConfigError(f"--eval: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    if "speaker" not in items.columns or "label" not in items.columns:
        raise ConfigError("expected an item table with speaker and label columns; re-extract the store with featstore")
    from mirage.featstore.items import labelled_mask
    from mirage.featstore.views import clean_mask

    speakers = items["speaker"].astype(str).to_numpy()
    testable = clean_mask(items) & labelled_mask(items["label"])
    folds: list[Fold] = []
    if scheme == "loso":
        col = group_column(items, metadata)
        groups = items[col].astype(str).to_numpy()
        values = sorted(set(groups.tolist()))
        if len(values) < 2:
            raise ConfigError(f"--eval loso: expected at least 2 {col}s, got {len(values)}; use --eval official or a store with more {col}s")
        for g in values:
            test = np.flatnonzero((groups == g) & testable)
            train = np.flatnonzero(groups != g)
            if not len(test):  # e.g. a speaker with unlabelled items only: it trains, nothing to test
                log.info("--eval loso: %s %s has no labelled clean item to test; no fold for it", col, g)
                continue
            folds.append(Fold(f"{col}={g}", tuple(sorted(set(speakers[test].tolist()))), train, test))
        return folds
    splits = items["split"].astype(str).str.lower().to_numpy() if "split" in items.columns else np.full(len(items), "train")
    tests = sorted(s for s in set(splits.tolist()) if s.startswith("test"))
    train = np.flatnonzero(splits == "train")
    if not tests or not len(train):
        have = ", ".join(sorted(set(splits.tolist())))
        raise ConfigError(f"--eval official: expected items with split 'train' and a split named test*, got splits {{{have}}}; "
                          "use --eval loso for corpora without an official split (EmoDB, RAVDESS, CREMA-D, IEMOCAP)")
    for t in tests:
        test = np.flatnonzero((splits == t) & testable)
        folds.append(Fold(f"split={t}", tuple(sorted(set(speakers[test].tolist()))), train, test))
    return folds


def assign_shards(folds: Sequence[Fold], shards: pd.DataFrame, *, column: str = "trained_speakers") -> dict[str, pd.DataFrame]:
    """The synthetic shards each fold may use: those whose generator saw none of its test speakers.

    Raises :class:`LeakageError` when a fold would get no clean shard (every shard given was
    made by a generator that saw one of its test speakers), when a manifest row does not
    say which speakers its generator saw, or when a shard is clean for no fold at all.
    """
    if shards.empty:
        return {f.name: shards for f in folds}
    if column not in shards.columns:
        raise LeakageError(f"synthetic manifest: expected a {column!r} column naming the speakers each generator saw, "
                           f"got columns {sorted(shards.columns)}; regenerate the shards with `augment generate`")
    from mirage.augment.vouch import speaker_list

    seen = [speaker_list(v) for v in shards[column].tolist()]
    for (path, s) in zip(shards["path_abs"] if "path_abs" in shards else shards.index, seen):
        if s is None:
            raise LeakageError(f"synthetic shard {path}: expected its manifest row to list the speakers its generator saw, "
                               "got none; regenerate the shards with `augment generate`")
    used = np.zeros(len(shards), dtype=bool)
    out: dict[str, pd.DataFrame] = {}
    for fold in folds:
        test = set(fold.test_speakers)
        clean = np.array([not (test & set(s)) for s in seen])
        if not clean.any():
            leaked = sorted(test & set().union(*map(set, seen)))
            raise LeakageError(
                f"fold {fold.name}: expected synthetic shards from a generator that never saw the test speaker(s) "
                f"{', '.join(leaked)}, got only shards whose generator did; fit one without them "
                f"(`augment fit --exclude-speakers {','.join(leaked)}`) or let `train compare` do it per fold")
        used |= clean
        out[fold.name] = shards[clean]
    if not used.all():
        path = (shards["path_abs"] if "path_abs" in shards else pd.Series(shards.index.astype(str))).iloc[int(np.argmin(used))]
        raise LeakageError(f"synthetic shard {path}: its generator saw test speakers of every fold; expected a generator "
                           "fitted without some fold's test speakers; drop it or refit with --exclude-speakers")
    return out
