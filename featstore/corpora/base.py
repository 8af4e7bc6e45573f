"""The corpus adapter interface and the helpers every adapter shares.

An adapter turns one corpus, in its native on-disk layout, into the item table of
:mod:`featstore.items`. Adapters read label files and audio headers only (never the
samples), raise :class:`CorpusNotFoundError` for a missing root or label file and
:class:`CorpusFormatError` (file + line) for a malformed label file. A corrupt or
missing wav is not the adapter's business: its ``duration_s`` is NaN and the
extraction engine skips and reports it later.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, Iterable

import pandas as pd

from mirage.featstore.errors import CorpusFormatError, CorpusNotFoundError

log = logging.getLogger(__name__)

#: Gender values used in every adapter's ``gender`` column.
FEMALE, MALE, UNKNOWN = "female", "male", "unknown"

#: Header reads fan out over threads above this many files (libsndfile releases the GIL).
_PARALLEL_INFO_MIN = 256


class Corpus(abc.ABC):
    """One corpus adapter. Subclasses set the class attributes and ``load_items``."""

    #: registry name, e.g. "msp-podcast"
    name: ClassVar[str] = ""
    #: one line for ``featstore corpora`` listings
    description: ClassVar[str] = ""
    #: False only for corpora that can make themselves (``demo``)
    needs_root: ClassVar[bool] = True
    #: what the root folder should contain, quoted in error messages
    root_hint: ClassVar[str] = ""
    #: the usual evaluation protocol: "loso" (leave one speaker out), "session"
    #: (leave one session out, by the ``session`` column) or "official" (the ``split`` column)
    eval_protocol: ClassVar[str] = "loso"

    @abc.abstractmethod
    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        """Parse the corpus under ``root`` into a validated item table (see ``make_items``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- helpers for subclasses -------------------------------------------------------------

    def resolve_root(self, root: str | os.PathLike | None) -> Path:
        """Absolute root folder, or a one-line CorpusNotFoundError that says what to pass."""
        hint = f" (the folder holding {self.root_hint})" if self.root_hint else ""
        if root is None or str(root) == "":
            raise CorpusNotFoundError(
                f"{self.name}: expected a corpus root folder, got none; "
                f"pass --root /path/to/{self.name}{hint}")
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            what = "a file" if path.exists() else "no such folder"
            raise CorpusNotFoundError(
                f"{self.name}: expected corpus root {path} to be a folder, got {what}; "
                f"pass --root pointing at the corpus{hint}")
        return path

    def missing_error(self, path: Path, what: str = "label file") -> CorpusNotFoundError:
        kind = "folder" if what.endswith("folder") else "file"
        return CorpusNotFoundError(
            f"{self.name}: expected {what} {path}, got no such {kind}; "
            f"check that --root points at the complete corpus: {self.root_hint or 'its native layout'}")

    def require_file(self, path: Path, what: str = "label file") -> Path:
        """``path`` when it is a file, else a CorpusNotFoundError naming it."""
        if not path.is_file():
            raise self.missing_error(path, what)
        return path

    def format_error(self, path: Path | str, lineno: int, message: str,
                     do: str = "fix or remove that line") -> CorpusFormatError:
        """``CorpusFormatError("<name>: <file> line <n>: <expected X, got Y>; <do Z>")``."""
        return CorpusFormatError(f"{self.name}: {path} line {lineno}: {message}; {do}")

    def no_audio_error(self, folder: Path, pattern: str) -> CorpusNotFoundError:
        return CorpusNotFoundError(
            f"{self.name}: expected audio files named like {pattern} under {folder}, got none; "
            f"pass --root pointing at the corpus: {self.root_hint or 'its native layout'}")

    def warn_missing_audio(self, missing: list[str]) -> None:
        if missing:
            log.warning("%s: %d labelled utterances have no audio file and were left out (first: %s)",
                        self.name, len(missing), missing[0])


def read_lines(path: Path) -> list[str]:
    """Lines of a text label file without line ends (UTF-8, undecodable bytes replaced)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return fh.read().splitlines()


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header only; NaN when the file cannot be read."""
    import soundfile as sf

    if "://" not in str(path) and not os.path.isfile(path):
        return math.nan  # missing, or a pipe/device whose header read would block
    try:
        info = sf.info(str(path))
        if info.samplerate <= 0:
            return math.nan
        return float(info.frames) / float(info.samplerate)
    except Exception:  # corrupt/missing/unsupported audio: the extraction engine reports it
        return math.nan


def audio_durations(paths: Iterable[str | os.PathLike]) -> list[float]:
    """``audio_duration`` for many files, reading headers on a few threads for big corpora."""
    paths = [str(p) for p in paths]
    if len(paths) < _PARALLEL_INFO_MIN:
        return [audio_duration(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(audio_duration, paths, chunksize=64))


def index_files(folder: Path, ext: str) -> dict[str, Path]:
    """Map file stem -> path for every ``*<ext>`` (any case) under ``folder``, recursively.

    Hidden files (e.g. macOS ``._x.wav`` resource forks) are ignored; the first path in
    sorted walk order wins when a stem repeats. A missing folder gives an empty map.
    """
    ext = ext.lower()
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith(".") or not fn.lower().endswith(ext):
                continue
            out.setdefault(fn[: -len(ext)], Path(dirpath) / fn)
    return out


def index_wavs(folder: Path) -> dict[str, Path]:
    """``index_files(folder, ".wav")``."""
    return index_files(folder, ".wav")


def read_text(path: Path | None) -> str:
    """A transcript file's text on one line ("" when there is none or it cannot be read)."""
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return ""


def read_texts(paths: list[Path | None]) -> list[str]:
    """``read_text`` for many files, on a few threads for big corpora."""
    if len(paths) < _PARALLEL_INFO_MIN:
        return [read_text(p) for p in paths]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(read_text, paths, chunksize=64))


def add_durations(rows: list[dict]) -> list[dict]:
    """Fill ``duration_s`` of each row from its ``path`` header."""
    for row, dur in zip(rows, audio_durations(r["path"] for r in rows)):
        row["duration_s"] = dur
    return rows
