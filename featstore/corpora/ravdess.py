"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), audio part.

Native layout: ``Actor_AA/MM-VV-EE-II-SS-RR-AA.wav`` (e.g. inside
``Audio_Speech_Actors_01-24/``): MM modality (03 audio-only), VV vocal channel
(01 speech, 02 song), EE emotion, II intensity (01 normal, 02 strong), SS statement,
RR repetition, AA actor (01-24, odd = male). Everything comes from the file name.
"""

from __future__ import annotations

import logging
import os
import re

import pandas as pd

from mirage.featstore.corpora.base import FEMALE, MALE, Corpus, add_durations, index_wavs
from mirage.featstore.items import make_items

log = logging.getLogger(__name__)

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
            "06": "fear", "07": "disgust", "08": "surprise"}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
CHANNELS = {"01": "speech", "02": "song"}

_NAME = re.compile(r"^(\d\d)-(0[12])-(0[1-8])-(0[12])-(0[12])-(\d\d)-(\d\d)$")


class RAVDESSCorpus(Corpus):
    name = "ravdess"
    description = "RAVDESS: 24 North-American actors, 2 statements, 8 emotions x 2 intensities"
    root_hint = "Actor_01/03-01-01-01-01-01-01.wav ..."

    def __init__(self, include_song: bool = False):
        #: song recordings (vocal channel 02) are left out unless asked for
        self.include_song = bool(include_song)

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        base = self.resolve_root(root)
        rows, skipped = [], []
        for stem, path in sorted(index_wavs(base).items()):
            m = _NAME.match(stem)
            if not m:
                skipped.append(path.name)
                continue
            _modality, channel, emo, intensity, statement, _rep, actor = m.groups()
            if channel == "02" and not self.include_song:
                continue
            rows.append({
                "utt_id": stem, "path": str(path), "speaker": actor,
                "label": EMOTIONS[emo], "split": "train", "text": STATEMENTS[statement],
                "gender": MALE if int(actor) % 2 else FEMALE,
                "intensity": INTENSITY[intensity], "vocal_channel": CHANNELS[channel],
            })
        if skipped:
            log.warning("ravdess: %d wav files do not follow the MM-VV-EE-II-SS-RR-AA.wav naming "
                        "and were left out (first: %s)", len(skipped), skipped[0])
        if not rows:
            raise self.no_audio_error(base, "Actor_01/03-01-01-01-01-01-01.wav")
        return make_items(add_durations(rows), source=f"ravdess {base}")
