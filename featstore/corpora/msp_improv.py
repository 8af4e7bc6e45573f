"""MSP-IMPROV (UTD), consensus labels, 4 classes.

Native layout::

    Evaluation.txt     (some releases spell it Evalution.txt)
    Audio/session1/S01A/R/MSP-IMPROV-S01A-F01-R-FM01.wav

File names: ``MSP-IMPROV-S<sentence><target emotion>-<speaker F01..M06>-<scenario>-<id>``;
the speaker's number is the session (one F/M pair per session). Each utterance block of
Evaluation.txt starts with a consensus line such as
``UTD-IMPROV-S01A-F01-R-FM01.avi; A; A:3.000000; V:2.000000; D:3.400000; N:3.800000;``
(consensus class, then mean arousal, valence, dominance, naturalness), followed by the
individual evaluators' lines, which are ignored. Consensus classes A, H, S, N map to
angry, happy, sad, neutral; the others (O other, X no agreement) are left out.
Transcripts are read from ``Human_transcriptions/**/<utt>.txt`` when present.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from mirage.featstore.corpora.base import (FEMALE, MALE, Corpus, add_durations, index_files, index_wavs,
                                    read_lines, read_texts)
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

EMOTIONS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}
DROPPED_CODES = ("O", "X")
#: spelled-out classes some tools write instead of the letters
_WORDS = {"ANGRY": "A", "ANGER": "A", "HAPPY": "H", "HAPPINESS": "H", "SAD": "S", "SADNESS": "S",
          "NEUTRAL": "N", "OTHER": "O"}
LABEL_FILES = ("Evaluation.txt", "Evalution.txt")
TRANSCRIPT_DIRS = ("Human_transcriptions", "Transcripts", "transcriptions")

_NAME = re.compile(r"^(?:MSP|UTD)-IMPROV-S(\d\d)([AHSN])-([FM])(\d\d)-([A-Z])-([A-Z]+\d+)$")
_SCORE = re.compile(r"^([AVDN])\s*:\s*(\S*)$")
_SCORES = {"A": "arousal", "V": "valence", "D": "dominance"}


class MSPImprovCorpus(Corpus):
    name = "msp-improv"
    description = "MSP-IMPROV: 12 actors in 6 dyadic sessions, improvised/read, 4 classes (A, H, S, N)"
    root_hint = "Evaluation.txt and Audio/session1..6/"
    eval_protocol = "session"

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        label_file = self._find_label_file(base)
        labels = self._read_labels(label_file)
        wavs = index_wavs(base)
        rows, missing, seen = [], [], set()
        for rec in labels:
            alt = rec.pop("_alt_id")
            if rec["utt_id"] in seen:
                log.warning("msp-improv: %s is listed twice in %s; keeping the first", rec["utt_id"], label_file)
                continue
            seen.add(rec["utt_id"])
            path = wavs.get(rec["utt_id"]) or wavs.get(alt)
            if path is None:
                missing.append(rec["utt_id"])
                continue
            rows.append({**rec, "path": str(path)})
        self.warn_missing_audio(missing)
        if not rows:
            raise self.no_audio_error(base, "Audio/session1/S01A/R/MSP-IMPROV-S01A-F01-R-FM01.wav")
        transcripts: dict[str, Path] = {}
        for d in TRANSCRIPT_DIRS:
            if (base / d).is_dir():
                transcripts.update(index_files(base / d, ".txt"))
        for row, text in zip(rows, read_texts([transcripts.get(r["utt_id"]) for r in rows])):
            row["text"] = text
        return make_items(add_durations(rows), source=f"msp-improv {label_file}")

    def _find_label_file(self, base: Path) -> Path:
        for where in (base, *sorted(p for p in base.iterdir() if p.is_dir())):
            for name in LABEL_FILES:
                if (where / name).is_file():
                    return where / name
        raise self.missing_error(base / LABEL_FILES[0])

    def _read_labels(self, path: Path) -> list[dict]:
        out, dropped = [], 0
        for lineno, line in enumerate(read_lines(path), start=1):
            fields = [f.strip() for f in line.split(";")]
            while fields and not fields[-1]:
                fields.pop()
            if not fields or not fields[0].lower().endswith((".avi", ".wav")):
                continue  # blank lines and the individual evaluators' lines
            if len(fields) < 2:
                raise self.format_error(path, lineno, "expected '<utt>.avi; <class>; A:..; V:..; D:..', "
                                                      f"got {len(fields)} field")
            stem = os.path.splitext(fields[0])[0]
            m = _NAME.match(stem)
            if not m:
                raise self.format_error(path, lineno, "expected a clip name like "
                                        f"UTD-IMPROV-S01A-F01-R-FM01.avi, got {fields[0]!r}")
            code = fields[1].upper()
            code = _WORDS.get(code, code)
            if code in DROPPED_CODES:
                dropped += 1
                continue
            if code not in EMOTIONS:
                raise self.format_error(path, lineno, "expected a consensus class in "
                                        f"{','.join([*EMOTIONS, *DROPPED_CODES])}, got {fields[1]!r}")
            sentence, target, sex, number, scenario, _clip = m.groups()
            row = {"utt_id": "MSP-IMPROV-" + stem.split("-IMPROV-", 1)[1],
                   "_alt_id": stem, "speaker": f"{sex}{number}", "label": EMOTIONS[code],
                   "split": "train", "session": int(number), "gender": FEMALE if sex == "F" else MALE,
                   "target": EMOTIONS[target], "scenario": scenario,
                   "arousal": float("nan"), "valence": float("nan"), "dominance": float("nan")}
            for field in fields[2:]:
                s = _SCORE.match(field)
                if not s:
                    continue
                if s.group(1) in _SCORES:
                    try:
                        row[_SCORES[s.group(1)]] = float(s.group(2))
                    except ValueError:
                        raise self.format_error(path, lineno, f"expected a number after "
                                                              f"'{s.group(1)}:', got {s.group(2)!r}") from None
            out.append(row)
        if not out and not dropped:
            raise self.format_error(path, 1, "expected utterance lines like "
                                    "'UTD-IMPROV-S01A-F01-R-FM01.avi; A; A:3.0; V:2.0; D:3.4', got none")
        if dropped:
            log.info("msp-improv: left out %d utterances with consensus class O/X", dropped)
        return out
