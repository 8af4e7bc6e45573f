"""MSP-Podcast (UTD), consensus labels.

Native layout::

    Audios/MSP-PODCAST_0001_0008.wav
    Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    Transcripts/MSP-PODCAST_0001_0008.txt   (optional)

EmoClass codes: A angry, S sad, H happy, U surprise, F fear, D disgust, C contempt,
N neutral, O other, X no agreement (left out). Split_Set gives the official split.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pandas as pd

from mirage.featstore.corpora.base import (FEMALE, MALE, UNKNOWN, Corpus, add_durations, index_files,
                                    read_texts)
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

EMOTIONS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear",
            "D": "disgust", "C": "contempt", "N": "neutral", "O": "other"}
#: consensus code for "no agreement": such rows are left out
NO_AGREEMENT = "X"
SPLITS = {"train": "train", "development": "dev", "dev": "dev", "validation": "dev",
          "test1": "test1", "test2": "test2", "test3": "test3", "test": "test"}
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
_FLOATS = {"EmoAct": "arousal", "EmoVal": "valence", "EmoDom": "dominance"}


class MSPPodcastCorpus(Corpus):
    name = "msp-podcast"
    description = "MSP-Podcast: natural podcast speech, consensus categories + arousal/valence/dominance"
    root_hint = "Audios/ and Labels/labels_consensus.csv"
    eval_protocol = "official"

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        label_file = self.require_file(base / "Labels" / "labels_consensus.csv")
        labels = self._read_labels(label_file)
        audio_dir = base / "Audios"
        if not audio_dir.is_dir() and (base / "Audio").is_dir():
            audio_dir = base / "Audio"   # some copies drop the s
        if not audio_dir.is_dir():
            raise self.no_audio_error(audio_dir, "Audios/MSP-PODCAST_0001_0008.wav")
        wavs = index_files(audio_dir, ".wav")
        transcripts = index_files(base / "Transcripts", ".txt")
        rows, missing = [], []
        for rec in labels:
            stem = rec.pop("_stem")
            path = wavs.get(stem)
            if path is None:
                missing.append(stem)
                continue
            rows.append({"utt_id": stem, "path": str(path), **rec})
        self.warn_missing_audio(missing)
        if not rows:
            raise self.no_audio_error(audio_dir, "MSP-PODCAST_0001_0008.wav (listed in labels_consensus.csv)")
        texts = read_texts([transcripts.get(r["utt_id"]) for r in rows])
        for row, text in zip(rows, texts):
            row["text"] = text
        return make_items(add_durations(rows), source=f"msp-podcast {label_file}")

    def _read_labels(self, path: Path) -> list[dict]:
        out, dropped = [], 0
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            absent = [c for c in COLUMNS if c not in header]
            if absent:
                raise self.format_error(path, 1, f"expected columns {','.join(COLUMNS)}, "
                                                 f"got {','.join(header) or 'an empty line'}")
            idx = {c: header.index(c) for c in COLUMNS}
            for rec in reader:
                lineno = reader.line_num
                if not rec or not any(f.strip() for f in rec):
                    continue
                if len(rec) != len(header):
                    raise self.format_error(path, lineno, f"expected {len(header)} fields, got {len(rec)}")
                f = {c: rec[i].strip() for c, i in idx.items()}
                code = f["EmoClass"].upper()
                if code == NO_AGREEMENT:
                    dropped += 1
                    continue
                if code not in EMOTIONS:
                    raise self.format_error(path, lineno, f"expected EmoClass in "
                                            f"{','.join([*EMOTIONS, NO_AGREEMENT])}, got {f['EmoClass']!r}")
                row = {"_stem": os.path.splitext(f["FileName"])[0], "label": EMOTIONS[code]}
                for col, extra in _FLOATS.items():
                    try:
                        row[extra] = float(f[col]) if f[col] else float("nan")
                    except ValueError:
                        raise self.format_error(path, lineno, f"expected a number in {col}, "
                                                              f"got {f[col]!r}") from None
                spk = f["SpkrID"]
                row["speaker"] = "unknown" if spk.lower() in ("", "unknown") else spk
                row["gender"] = {"male": MALE, "female": FEMALE}.get(f["Gender"].lower(), UNKNOWN)
                row["split"] = SPLITS.get(f["Split_Set"].lower(), f["Split_Set"].lower() or "train")
                out.append(row)
        if dropped:
            log.info("msp-podcast: left out %d utterances without consensus (EmoClass X)", dropped)
        return out
