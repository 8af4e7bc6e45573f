"""Berlin Database of Emotional Speech (EmoDB).

Native layout: ``wav/SSTTTEV.wav`` (SS speaker, TTT text id, E emotion letter, V version),
plus ``lablaut/``, ``labsilb/``, ``silb/`` and the perception-test tables that this
adapter does not need. Labels, speakers and texts all come from the file name.
"""

from __future__ import annotations

import logging
import os
import re

import pandas as pd

from mirage.featstore.corpora.base import FEMALE, MALE, UNKNOWN, Corpus, add_durations, index_wavs
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

#: Emotion letters (German initials) -> canonical labels.
EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear",
            "F": "happy", "T": "sad", "N": "neutral"}

#: Speaker id -> sex, from the EmoDB documentation.
SPEAKER_GENDER = {"03": MALE, "08": FEMALE, "09": FEMALE, "10": MALE, "11": MALE,
                  "12": MALE, "13": FEMALE, "14": FEMALE, "15": MALE, "16": FEMALE}

#: The ten sentences, keyed by the text id in the file name.
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

_NAME = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")


class EmoDBCorpus(Corpus):
    name = "emodb"
    description = "Berlin EmoDB: 10 German actors, 10 sentences, 7 emotions (file-name labels)"
    root_hint = "wav/03a01Fa.wav ..."

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        wav_dir = base / "wav" if (base / "wav").is_dir() else base
        wavs = index_wavs(wav_dir)
        rows, skipped = [], []
        for stem, path in sorted(wavs.items()):
            m = _NAME.match(stem)
            if not m:
                skipped.append(path.name)
                continue
            speaker, text_id, emo, _version = m.groups()
            rows.append({
                "utt_id": stem, "path": str(path), "speaker": speaker,
                "label": EMOTIONS[emo], "split": "train", "text": TEXTS.get(text_id, ""),
                "gender": SPEAKER_GENDER.get(speaker, UNKNOWN), "text_id": text_id,
            })
        if skipped:
            log.warning("emodb: %d wav files do not follow the SSTTTEV.wav naming and were left out "
                        "(first: %s)", len(skipped), skipped[0])
        if not rows:
            raise self.no_audio_error(wav_dir, "03a01Fa.wav")
        return make_items(add_durations(rows), source=f"emodb {wav_dir}")
