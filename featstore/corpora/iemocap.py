"""IEMOCAP (USC), the usual 4-class protocol.

Native layout (``IEMOCAP_full_release/``)::

    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    Session1/dialog/transcriptions/Ses01F_impro01.txt

EmoEvaluation turn lines look like
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``
(valence, activation, dominance); the per-evaluator lines after each are ignored.
4-class protocol: neutral, happy (happy + excited), sad, angry; other codes left out.
Speakers are ``Ses01F`` ... ``Ses05M`` (session + the utterance speaker's sex).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from mirage.featstore.corpora.base import FEMALE, MALE, Corpus, add_durations, index_wavs, read_lines
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

#: 4-class protocol; every other code of ALL_CODES is left out.
FOUR_CLASS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
ALL_CODES = ("ang", "dis", "exc", "fea", "fru", "hap", "neu", "oth", "sad", "sur", "xxx")

_TURN = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+"
                   r"\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]\s*$")
_UTT = re.compile(r"^Ses(\d\d)[FM]_.+_([FM])[A-Za-z]*\d+$")
_TRANSCRIPT = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*)$")


class IEMOCAPCorpus(Corpus):
    name = "iemocap"
    description = "IEMOCAP: 5 dyadic sessions, 10 actors, 4-class protocol (neu, hap+exc, sad, ang)"
    root_hint = "Session1..Session5/ (sentences/wav, dialog/EmoEvaluation, dialog/transcriptions)"
    eval_protocol = "session"

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        sessions = sorted(p for p in base.glob("Session[1-5]") if p.is_dir())
        if not sessions:
            raise self.no_audio_error(base, "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
        rows, missing = [], []
        for sess_dir in sessions:
            eval_dir = sess_dir / "dialog" / "EmoEvaluation"
            if not eval_dir.is_dir():
                raise self.missing_error(eval_dir, what="label folder")
            label_files = sorted(p for p in eval_dir.glob("*.txt") if not p.name.startswith("."))
            if not label_files:
                raise self.missing_error(eval_dir / "*.txt", what="label files")
            wavs = index_wavs(sess_dir / "sentences" / "wav")
            texts = self._transcripts(sess_dir / "dialog" / "transcriptions")
            for label_file in label_files:
                for rec in self._read_labels(label_file):
                    path = wavs.get(rec["utt_id"])
                    if path is None:
                        missing.append(rec["utt_id"])
                        continue
                    rows.append({**rec, "path": str(path), "text": texts.get(rec["utt_id"], "")})
        self.warn_missing_audio(missing)
        if not rows:
            raise self.no_audio_error(base, "Session1/sentences/wav/<dialog>/<utt>.wav (4-class labels)")
        return make_items(add_durations(rows), source=f"iemocap {base}")

    def _read_labels(self, path: Path) -> list[dict]:
        out = []
        for lineno, line in enumerate(read_lines(path), start=1):
            if not line.startswith("["):
                continue  # header (%), evaluator lines (C-E1:, A-F2:), blank lines
            m = _TURN.match(line)
            if not m:
                raise self.format_error(path, lineno, "expected '[start - end]<TAB>utt<TAB>code<TAB>"
                                        f"[V, A, D]', got {line.strip()[:60]!r}")
            _start, _end, utt, code, val, act, dom = m.groups()
            if code not in ALL_CODES:
                raise self.format_error(path, lineno, f"expected an emotion code in {','.join(ALL_CODES)}, "
                                                      f"got {code!r}")
            if code not in FOUR_CLASS:
                continue
            u = _UTT.match(utt)
            if not u:
                raise self.format_error(path, lineno, f"expected an utterance name like "
                                                      f"Ses01F_impro01_F000, got {utt!r}")
            session, sex = int(u.group(1)), u.group(2)
            out.append({
                "utt_id": utt, "speaker": f"Ses{session:02d}{sex}", "label": FOUR_CLASS[code],
                "split": "train", "session": session, "gender": FEMALE if sex == "F" else MALE,
                "valence": float(val), "arousal": float(act), "dominance": float(dom),
            })
        return out

    @staticmethod
    def _transcripts(folder: Path) -> dict[str, str]:
        """utt -> text from ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.`` lines."""
        out: dict[str, str] = {}
        if not folder.is_dir():
            log.warning("iemocap: no transcriptions folder %s; texts left empty", folder)
            return out
        for path in sorted(folder.glob("*.txt")):
            if path.name.startswith("."):
                continue
            for line in read_lines(path):
                m = _TRANSCRIPT.match(line.strip())
                if m:
                    out[m.group(1)] = m.group(2).strip()
        return out
