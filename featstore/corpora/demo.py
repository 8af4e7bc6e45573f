"""The ``demo`` corpus: a deterministic, self-generated stand-in for acted emotional speech.

Four emotions (neutral, happy, sad, angry) spoken by ``n_speakers`` synthetic speakers
(alternately female and male, each with its own pitch, vocal-tract length, rate,
expressiveness, breathiness and level), ``n_per_class`` utterances per speaker and
emotion, 1.5-3 s at 16 kHz, with short English transcripts: three in four carry the
emotion in their words, one in four is a neutral-content sentence shared by all emotions
(so text alone does not give the label away either).

The wavs are written once (16-bit PCM) into ``<cache_dir>/demo/<fingerprint>/wav/`` where
``cache_dir`` defaults to ``$MIRAGE_CACHE`` (itself defaulting to ``~/.cache/mirage``),
or into ``root`` when one is given; the folder also gets ``items.csv`` (readable by the
``csv`` adapter) and ``demo.json`` (parameters + fingerprint, written last). Generation
happens in a temporary sibling folder that is renamed into place, so an interrupted run
never leaves a half corpus. The same parameters give byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mirage.featstore.corpora.base import FEMALE, MALE, Corpus, add_durations
from mirage.featstore.corpora.demo_synth import EMOTIONS, STYLES, SpeakerProfile, synthesize_utterance
from mirage.featstore.errors import ConfigError
from mirage.featstore.cache import default_cache_dir
from mirage.featstore.items import make_items

__all__ = ["DemoCorpus", "SpeakerProfile", "synthesize_utterance", "make_speakers", "text_for",
           "EMOTIONS", "STYLES", "GENERATOR_VERSION", "default_cache_dir"]

log = logging.getLogger(__name__)

#: Bump when the synthesis changes the samples; it is part of the fingerprint.
GENERATOR_VERSION = "1"
MANIFEST = "demo.json"
#: In a temporary folder being written: "<pid> <host>" of the writer (removed before the rename).
OWNER = ".owner"
#: A temporary folder without an owner file (written by an older version) is stale after this long.
STALE_UNOWNED_S = 3600.0

TEXTS = {
    "neutral": (
        "The meeting is scheduled for Tuesday afternoon.", "Please put the folder on the second shelf.",
        "The train leaves from platform four.", "I checked the report this morning.",
        "We usually take the bus to work.", "The store closes at eight tonight.",
        "He moved to a new apartment last month.", "Turn left at the next corner."),
    "happy": (
        "I am so happy about this!", "This is the best news I have heard all year!",
        "We won the match, I can't believe it!", "What a wonderful surprise, thank you so much!",
        "I love this place, it's just perfect.", "Finally, we're going on holiday tomorrow!",
        "You did a fantastic job, I'm delighted.", "That's great, let's celebrate tonight!"),
    "sad": (
        "I miss her so much.", "Nothing seems to go right anymore.", "I lost my job today.",
        "He never came back home.", "I feel so alone these days.",
        "It's over, there is nothing left to say.", "I wish things had turned out differently.",
        "The old dog died last night."),
    "angry": (
        "Get out of my way right now!", "I told you a hundred times to stop that!",
        "This is completely unacceptable!", "How dare you lie to me!",
        "Don't you ever touch my things again!", "I am sick and tired of your excuses!",
        "You ruined everything, again!", "Stop wasting my time!"),
}
#: Neutral-content sentences spoken in every emotion (one utterance in four).
SHARED_TEXTS = (
    "I didn't expect to see you here.", "It's going to happen tomorrow.",
    "So that's what you decided.", "She called me again last night.",
    "We have to talk about the house.", "They changed the plan at the last minute.",
    "I read your message this morning.", "You are really going through with it.")


def _seed(*parts: int) -> int:
    """A 63-bit seed derived from integer parts (independent streams per utterance)."""
    a, b = np.random.SeedSequence(list(parts)).generate_state(2)
    return (int(a) << 31) ^ int(b)


def make_speakers(n_speakers: int = 8, seed: int = 0) -> list[SpeakerProfile]:
    """Speaker profiles F01, M01, F02, M02, ... drawn from ``seed``."""
    out = []
    for i in range(n_speakers):
        rng = np.random.default_rng(_seed(seed, 1, i))
        female = i % 2 == 0
        out.append(SpeakerProfile(
            speaker=f"{'F' if female else 'M'}{i // 2 + 1:02d}", gender=FEMALE if female else MALE,
            f0_hz=float(rng.uniform(180, 250) if female else rng.uniform(95, 140)),
            formant_scale=float(rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05)),
            rate_sps=float(rng.uniform(3.8, 5.0)), expressiveness=float(rng.uniform(0.6, 1.2)),
            breathiness=float(rng.uniform(0.04, 0.10) if female else rng.uniform(0.02, 0.07)),
            level_db=float(rng.uniform(-3.0, 3.0)),
        ))
    return out


def text_for(emotion: str, speaker_index: int, k: int) -> str:
    """The transcript of utterance ``k`` of a speaker in ``emotion`` (deterministic)."""
    e = EMOTIONS.index(emotion)
    if (k + speaker_index) % 4 == 3:
        return SHARED_TEXTS[(3 * k + speaker_index + e) % len(SHARED_TEXTS)]
    bank = TEXTS[emotion]
    return bank[(k + 3 * speaker_index) % len(bank)]


class DemoCorpus(Corpus):
    name = "demo"
    description = "embedded synthetic corpus: 4 emotions x 8 speakers, speech-like signals, no download"
    needs_root = False
    root_hint = "an empty or earlier demo folder"

    def __init__(self, n_speakers: int = 8, n_per_class: int = 8, seed: int = 0, sample_rate: int = 16000):
        for key, val, lo in (("n_speakers", n_speakers, 2), ("n_per_class", n_per_class, 1),
                             ("sample_rate", sample_rate, 8000)):
            if not isinstance(val, (int, np.integer)) or val < lo:
                raise ConfigError(f"demo: expected {key} to be an integer >= {lo}, got {val!r}")
        self.n_speakers, self.n_per_class = int(n_speakers), int(n_per_class)
        self.seed, self.sample_rate = int(seed), int(sample_rate)

    def __repr__(self) -> str:
        return (f"DemoCorpus(n_speakers={self.n_speakers}, n_per_class={self.n_per_class}, "
                f"seed={self.seed}, sample_rate={self.sample_rate})")

    @property
    def params(self) -> dict:
        return {"generator": GENERATOR_VERSION, "n_speakers": self.n_speakers,
                "n_per_class": self.n_per_class, "seed": self.seed, "sample_rate": self.sample_rate}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]

    def plan(self) -> list[dict]:
        """One row per utterance (without path/duration), in generation order."""
        rows = []
        for s, prof in enumerate(make_speakers(self.n_speakers, self.seed)):
            for e, emo in enumerate(EMOTIONS):
                for k in range(self.n_per_class):
                    rows.append({"utt_id": f"demo_{prof.speaker}_{emo}_{k:02d}", "speaker": prof.speaker,
                                 "label": emo, "split": "train", "text": text_for(emo, s, k),
                                 "gender": prof.gender, "_profile": prof,
                                 "_seed": _seed(self.seed, 2, s, e, k)})
        return rows

    def load_items(self, root: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
        if root is not None and str(root) != "":
            target = Path(root).expanduser().resolve()
        else:
            target = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()).resolve()
            target = target / "demo" / self.fingerprint
        rows = self.plan()
        if not self._is_complete(target):
            self._generate(target, rows)
        for row in rows:
            row.pop("_profile"), row.pop("_seed")
            row["path"] = str(target / "wav" / f"{row['utt_id']}.wav")
        return make_items(add_durations(rows), source=f"demo {target}")

    def _is_complete(self, target: Path) -> bool:
        manifest = target / MANIFEST
        if manifest.is_file():
            try:
                meta = json.loads(manifest.read_text())
            except (OSError, ValueError):
                meta = {}
            if meta.get("fingerprint") == self.fingerprint:
                return True
            raise ConfigError(f"demo: expected {target} to hold the demo corpus {self.fingerprint} "
                              f"({self!r}), got one made with other parameters ({meta.get('params')}); "
                              "pass another --root or delete that folder")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ConfigError(f"demo: expected {target} to be empty or a demo corpus folder, got other files; "
                              "pass an empty or new --root")
        return False

    def _generate(self, target: Path, rows: list[dict]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the corpus is not
        (tmp / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # so a later run can tell it was killed
        try:
            import soundfile as sf

            t0 = time.perf_counter()
            log.info("demo: generating %d utterances into %s", len(rows), target)
            (tmp / "wav").mkdir()
            for row in rows:
                wave = synthesize_utterance(emotion=row["label"], speaker_profile=row["_profile"],
                                            text=row["text"], seed=row["_seed"], sample_rate=self.sample_rate)
                sf.write(tmp / "wav" / f"{row['utt_id']}.wav", wave, self.sample_rate, subtype="PCM_16")
            cols = ["utt_id", "path", "label", "speaker", "text", "split", "gender"]
            with open(tmp / "items.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(cols)
                for row in rows:
                    w.writerow([f"wav/{row['utt_id']}.wav" if c == "path" else row[c] for c in cols])
            meta = {"corpus": "demo", "fingerprint": self.fingerprint, "params": self.params,
                    "n_items": len(rows), "emotions": list(EMOTIONS)}
            (tmp / MANIFEST).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            (tmp / OWNER).unlink()
            try:
                os.rename(tmp, target)  # replaces an empty target folder; fails on a full one
            except OSError:
                if not self._is_complete(target):  # someone else finished first: fine; else re-raise
                    raise
            log.info("demo: wrote %d utterances in %.1f s", len(rows), time.perf_counter() - t0)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_tmp(target: Path) -> None:
    """Remove temporary folders of earlier generations of ``target`` whose writer was killed
    (its pid gone on this host). A live writer's folder, or one of another host, is left alone."""
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            pid_text, host = (tmp / OWNER).read_text().split()[:2]
            pid = int(pid_text)
        except (OSError, ValueError):  # no owner: left by an older version, or a writer that just started
            try:
                old = time.time() - tmp.stat().st_mtime > STALE_UNOWNED_S
            except OSError:
                continue
            if old:
                log.info("demo: removing %s, an unfinished generation without an owner", tmp)
                shutil.rmtree(tmp, ignore_errors=True)
            continue
        if host != socket.gethostname():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        log.info("demo: removing %s, left by a generation that was killed (pid %d)", tmp, pid)
        shutil.rmtree(tmp, ignore_errors=True)
