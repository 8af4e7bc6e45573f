"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset), audio part.

Native layout: ``AudioWAV/<actor 1001-1091>_<sentence>_<emotion>_<level>.wav`` and,
optionally, ``VideoDemographics.csv`` (ActorID, Age, Sex, Race, Ethnicity) which gives
the ``gender`` column. Labels are the acted (intended) emotions of the file names.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

import pandas as pd

from mirage.featstore.corpora.base import FEMALE, MALE, UNKNOWN, Corpus, add_durations, index_wavs
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
            "NEU": "neutral", "SAD": "sad"}
INTENSITY = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}

#: The twelve sentences, keyed by their code in the file name.
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)$")


class CremaDCorpus(Corpus):
    name = "crema-d"
    description = "CREMA-D: 91 actors, 12 English sentences, 6 emotions at up to 4 levels"
    root_hint = "AudioWAV/1001_DFA_ANG_XX.wav ... [VideoDemographics.csv]"

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        wav_dir = base / "AudioWAV" if (base / "AudioWAV").is_dir() else base
        genders = self._genders(base)
        rows, skipped = [], []
        for stem, path in sorted(index_wavs(wav_dir).items()):
            m = _NAME.match(stem)
            if not m:
                skipped.append(path.name)
                continue
            actor, sentence, emo, level = m.groups()
            rows.append({
                "utt_id": stem, "path": str(path), "speaker": actor, "label": EMOTIONS[emo],
                "split": "train", "text": SENTENCES.get(sentence, ""),
                "gender": genders.get(actor, UNKNOWN), "intensity": INTENSITY[level],
            })
        if skipped:
            log.warning("crema-d: %d wav files do not follow the <actor>_<sentence>_<EMO>_<LVL>.wav "
                        "naming and were left out (first: %s)", len(skipped), skipped[0])
        if not rows:
            raise self.no_audio_error(wav_dir, "AudioWAV/1001_DFA_ANG_XX.wav")
        return make_items(add_durations(rows), source=f"crema-d {wav_dir}")

    def _genders(self, base: Path) -> dict[str, str]:
        """Actor id -> gender from VideoDemographics.csv when the file is there."""
        path = base / "VideoDemographics.csv"
        if not path.is_file():
            return {}
        out: dict[str, str] = {}
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if "ActorID" not in header or "Sex" not in header:
                raise self.format_error(path, 1, f"expected columns ActorID and Sex, got {header}")
            i_id, i_sex = header.index("ActorID"), header.index("Sex")
            for rec in reader:
                lineno = reader.line_num
                if not rec or not any(f.strip() for f in rec):
                    continue
                if len(rec) != len(header):
                    raise self.format_error(path, lineno, f"expected {len(header)} fields, got {len(rec)}")
                sex = rec[i_sex].strip().lower()
                out[rec[i_id].strip()] = {"male": MALE, "female": FEMALE}.get(sex, UNKNOWN)
        return out
