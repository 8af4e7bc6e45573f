"""Any folder of audio as *unlabelled* items (``featstore extract --unlabelled-root DIR``).

MTL-AUG's auxiliary tasks (augmentation type, reconstruction of the clean view) need no
emotion label, so speech without labels can train the shared trunk too. Every audio file
under the folder (recursively; hidden files skipped) becomes one item with an empty label:
it is extracted, counted as ``n_unlabelled`` by ``featstore info``, gets the same views as
the labelled items, and is left out of every supervised loss and every test fold.

``utt_id`` is ``unlabelled/<path relative to the folder, without extension>``, so it cannot
collide with a corpus's own ids. ``speaker`` is ``unlabelled/<sub-folder>``: the first
folder level under the root, which is how speech collections are usually grouped (one
folder per talker or recording). Files directly under the root share one pseudo-speaker,
``unlabelled/``. Folds keep all of a pseudo-speaker's rows together and, having no labelled
row, it only ever trains.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mirage.featstore.corpora.base import audio_durations
from mirage.featstore.errors import CorpusNotFoundError, CorpusFormatError
from mirage.featstore.items import make_items

#: file extensions read as audio (what soundfile decodes)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
#: prefix of the utt_id and speaker of every unlabelled item
PREFIX = "unlabelled/"


def audio_files(root: Path) -> list[Path]:
    """Every audio file under ``root``, in sorted walk order (hidden files and folders skipped)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / fn for fn in sorted(filenames)
                  if not fn.startswith(".") and fn.lower().endswith(AUDIO_EXTENSIONS)]
    return found


def unlabelled_items(root: str | os.PathLike) -> pd.DataFrame:
    """An item table of every audio file under ``root``, each with an empty label."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        what = "a file" if path.exists() else "no such folder"
        raise CorpusNotFoundError(f"--unlabelled-root: expected a folder of audio files, got {what} at {path}")
    files = audio_files(path)
    if not files:
        raise CorpusNotFoundError(f"--unlabelled-root: expected audio files ({', '.join(AUDIO_EXTENSIONS)}) under {path}, "
                                  "got none; point it at a folder of speech recordings")
    rows = []
    for f in files:
        rel = f.relative_to(path)
        group = rel.parts[0] if len(rel.parts) > 1 else ""
        rows.append({"utt_id": PREFIX + rel.with_suffix("").as_posix(), "path": str(f), "speaker": PREFIX + group,
                     "label": "", "split": "train", "text": ""})
    for row, dur in zip(rows, audio_durations(r["path"] for r in rows)):
        row["duration_s"] = dur
    return make_items(rows, source=f"--unlabelled-root {path}")


def add_unlabelled(items: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """``items`` followed by the unlabelled items of ``root`` (a one-line error on an id clash)."""
    extra = unlabelled_items(root)
    clash = sorted(set(items["utt_id"]) & set(extra["utt_id"]))
    if clash:
        raise CorpusFormatError(f"--unlabelled-root: expected utt_ids not already in the corpus, got {clash[0]!r}; "
                                "rename the file or the corpus item")
    return pd.concat([items, extra], ignore_index=True, sort=False)
