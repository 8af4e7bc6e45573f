"""The item table: one row per utterance, the common currency of every corpus adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mirage.featstore.errors import CorpusFormatError

#: Columns every corpus adapter returns (extras such as ``session`` or ``arousal`` may follow).
ITEM_COLUMNS = ("utt_id", "path", "speaker", "label", "split", "duration_s", "text")

#: Canonical emotion label names; adapters map their native codes onto these.
CANONICAL_LABELS = (
    "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
    "boredom", "calm", "contempt", "other",
)


def make_items(rows: list[dict] | pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Build a validated item table from adapter rows.

    Missing optional columns are filled (``split`` -> "train", ``text`` -> "",
    ``duration_s`` -> NaN); ``source`` names the corpus/file in error messages.
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if df.empty:
        raise CorpusFormatError(f"{source}: expected at least one utterance, got none")
    for col, default in (("split", "train"), ("text", ""), ("duration_s", float("nan"))):
        if col not in df.columns:
            df[col] = default
    missing = [c for c in ("utt_id", "path", "speaker", "label") if c not in df.columns]
    if missing:
        raise CorpusFormatError(f"{source}: expected columns {list(ITEM_COLUMNS)}, missing {missing}")
    df["utt_id"] = df["utt_id"].astype(str)
    df["path"] = df["path"].astype(str)
    df["speaker"] = df["speaker"].astype(str)
    df["label"] = df["label"].astype(str)
    df["split"] = df["split"].fillna("train").astype(str)
    df["text"] = df["text"].fillna("").astype(str)
    df["duration_s"] = pd.to_numeric(df["duration_s"], errors="coerce").astype("float64")
    dup = df["utt_id"][df["utt_id"].duplicated()]
    if len(dup):
        raise CorpusFormatError(f"{source}: expected unique utt_id, got duplicates such as {dup.iloc[0]!r}")
    extras = [c for c in df.columns if c not in ITEM_COLUMNS]
    df = df[list(ITEM_COLUMNS) + extras].sort_values("utt_id", kind="stable").reset_index(drop=True)
    return df


#: label values that mean "no label" (an unlabelled item: kept in the store, left out of supervised losses)
UNLABELLED_VALUES = ("", "nan", "none", "<na>")


def labelled_mask(labels: pd.Series) -> np.ndarray:
    """True where an item carries an emotion label (not empty/NaN)."""
    text = labels.astype("string").fillna("").str.strip().str.lower()
    return (~text.isin(UNLABELLED_VALUES)).to_numpy(dtype=bool)
