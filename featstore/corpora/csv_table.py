"""A user's own corpus as one CSV (or TSV) table.

Required columns ``path, label, speaker``; optional ``text, split, utt_id, duration_s``;
any other column is kept as an extra. Column names are case-insensitive and the
nkululeko/HF spellings ``file``/``audio``/``filename`` (path), ``emotion`` (label) and
``speaker_id``/``spk`` (speaker) are accepted. Relative paths are resolved against the
CSV's folder; fsspec URLs (``s3://...``) are kept as they are. Labels are lowercased and
common spellings mapped onto the canonical names (``anger`` -> ``angry``, ``happiness`` ->
``happy``, ``ang`` -> ``angry`` ...); other labels are kept, lowercased. An empty label makes
an *unlabelled* item: it is extracted and counted (``n_unlabelled`` in ``featstore info``), and
training uses it only where no label is needed (the auxiliary losses of ``--method mtl-aug``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path, PurePosixPath

import pandas as pd

from mirage.featstore.corpora.base import Corpus, audio_durations
from mirage.featstore.errors import CorpusNotFoundError
from mirage.featstore.items import CANONICAL_LABELS, make_items

log = logging.getLogger(__name__)

REQUIRED = ("path", "label", "speaker")
OPTIONAL = ("text", "split", "utt_id", "duration_s")
COLUMN_ALIASES = {"file": "path", "filename": "path", "file_name": "path", "audio": "path",
                  "wav": "path", "emotion": "label", "emo": "label", "speaker_id": "speaker",
                  "spk": "speaker", "transcript": "text", "transcription": "text", "id": "utt_id"}
LABEL_ALIASES = {
    "anger": "angry", "ang": "angry", "mad": "angry",
    "happiness": "happy", "hap": "happy", "joy": "happy", "exc": "happy", "excited": "happy",
    "sadness": "sad", "sadness/grief": "sad",
    "neu": "neutral", "neutrality": "neutral",
    "fearful": "fear", "fea": "fear", "anxiety": "fear", "afraid": "fear", "scared": "fear",
    "disgusted": "disgust", "dis": "disgust",
    "surprised": "surprise", "sur": "surprise",
    "bored": "boredom", "boring": "boredom",
    "calmness": "calm", "contemptuous": "contempt", "oth": "other",
}


def canonical_label(label: str) -> str:
    """Lowercase ``label`` and map common spellings onto :data:`CANONICAL_LABELS`."""
    key = label.strip().lower()
    return LABEL_ALIASES.get(key, key)


class CSVCorpus(Corpus):
    name = "csv"
    description = "your own table: a CSV/TSV with path,label,speaker[,text,split,utt_id] columns"
    root_hint = "a CSV file with columns path,label,speaker"

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        table = self._table_path(root)
        rows, extras = self._read(table)
        self._finish(rows, table.parent)
        unknown = sorted({r["label"] for r in rows if r["label"]} - set(CANONICAL_LABELS))
        if unknown:
            log.info("csv: labels outside the canonical set kept as they are: %s", ", ".join(unknown))
        df = make_items(rows, source=f"csv {table}")
        for col in extras:  # numeric extras become numbers
            try:
                df[col] = pd.to_numeric(df[col])
            except (ValueError, TypeError):
                pass
        return df

    def _table_path(self, root) -> Path:
        if root is None or str(root) == "":
            raise CorpusNotFoundError("csv: expected the path of a CSV table, got none; "
                                      "pass --root /path/to/items.csv (columns path,label,speaker)")
        path = Path(root).expanduser().resolve()
        if path.is_dir() and (path / "items.csv").is_file():
            return path / "items.csv"
        if not path.is_file():
            got = "a folder without items.csv" if path.is_dir() else "no such file"
            raise CorpusNotFoundError(f"csv: expected a CSV table at {path}, got {got}; "
                                      "pass --root /path/to/items.csv (columns path,label,speaker)")
        return path

    def _read(self, path: Path) -> tuple[list[dict], list[str]]:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            raw = next(reader, [])
            header = [COLUMN_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in raw]
            absent = [c for c in REQUIRED if c not in header]
            if absent:
                raise self.format_error(path, 1, f"expected columns {','.join(REQUIRED)} (plus optional "
                                        f"{','.join(OPTIONAL)}), got {','.join(raw) or 'an empty line'}",
                                        do="fix the header line")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise self.format_error(path, 1, f"expected unique column names, got {dup} twice",
                                        do="rename or drop one")
            extras = [h for h in header if h not in REQUIRED + OPTIONAL]
            rows = []
            for rec in reader:
                lineno = reader.line_num
                if not rec or not any(f.strip() for f in rec):
                    continue
                if len(rec) != len(header):
                    raise self.format_error(path, lineno, f"expected {len(header)} fields, got {len(rec)}")
                row = {h: v.strip() for h, v in zip(header, rec)}
                empty = [c for c in REQUIRED if not row[c] and c != "label"]  # an empty label: an unlabelled item
                if empty:
                    raise self.format_error(path, lineno, f"expected a value in {','.join(empty)}, got ''")
                row["label"] = canonical_label(row["label"])
                row["_line"] = lineno
                rows.append(row)
        if not rows:
            raise self.format_error(path, 2, "expected at least one data row, got none", do="add rows")
        return rows, extras

    def _finish(self, rows: list[dict], folder: Path) -> None:
        """Absolute paths, utt_ids, durations."""
        for row in rows:
            p = row["path"]
            if "://" not in p:
                q = Path(p).expanduser()
                row["path"] = str(q if q.is_absolute() else (folder / q).resolve())
        if any(not row.get("utt_id") for row in rows):
            stems = [PurePosixPath(r["path"]).stem for r in rows]
            unique = len(set(stems)) == len(stems)
            for row, stem in zip(rows, stems):
                if not row.get("utt_id"):
                    row["utt_id"] = stem if unique else _relative_id(row["path"], folder)
        local = [i for i, r in enumerate(rows) if "://" not in r["path"] and not r.get("duration_s")]
        for i, dur in zip(local, audio_durations(rows[i]["path"] for i in local)):
            rows[i]["duration_s"] = dur
        missing = [r for r in rows if "://" not in r["path"] and not os.path.exists(r["path"])]
        if missing:
            log.warning("csv: %d listed audio files do not exist (first: line %d, %s); extraction will "
                        "report them as missing", len(missing), missing[0]["_line"], missing[0]["path"])
        for row in rows:
            row.pop("_line")
            if row.get("duration_s") in ("", None):
                row["duration_s"] = math.nan


def _relative_id(path: str, folder: Path) -> str:
    """utt_id from the path relative to the CSV folder, without suffix (used when stems repeat)."""
    if "://" in path:
        rel = PurePosixPath(path.split("://", 1)[1])
    else:
        try:
            rel = PurePosixPath(Path(path).relative_to(folder).as_posix())
        except ValueError:
            rel = PurePosixPath(Path(path).as_posix().lstrip("/"))
    return str(rel.with_suffix(""))
