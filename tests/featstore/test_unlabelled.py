"""``featstore extract --unlabelled-root DIR``: any folder of audio joins the store unlabelled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore.corpora.unlabelled import unlabelled_items
from mirage.featstore.errors import CorpusNotFoundError
from mirage.featstore.extract import extract
from mirage.featstore.store import open_store
from mirage.train.folds import make_folds
from tests.featstore.test_views import SR, _tone, write_corpus


def write_speech_folder(root: Path) -> Path:
    """Two talkers' folders (2 + 1 clips), one loose clip, a hidden file and a non-audio file."""
    for rel, seed in (("talker_a/x1.wav", 20), ("talker_a/deep/x2.flac", 21), ("talker_b/y1.wav", 22), ("loose.wav", 23)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(seed), SR)
    (root / ".hidden.wav").write_bytes(b"junk")
    (root / "notes.txt").write_text("not audio")
    return root


def test_unlabelled_items_ids_speakers_and_labels(tmp_path):
    items = unlabelled_items(write_speech_folder(tmp_path / "speech"))
    assert items["utt_id"].tolist() == ["unlabelled/loose", "unlabelled/talker_a/deep/x2",
                                        "unlabelled/talker_a/x1", "unlabelled/talker_b/y1"]
    assert items["speaker"].tolist() == ["unlabelled/", "unlabelled/talker_a", "unlabelled/talker_a", "unlabelled/talker_b"]
    assert (items["label"] == "").all()
    assert np.allclose(items["duration_s"], 0.4)


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "expected a folder of audio files, got no such folder"),
    (lambda p: (p / "f.wav").write_bytes(b"x") and p / "f.wav", "expected a folder of audio files, got a file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "expected audio files"),
])
def test_unlabelled_root_errors(tmp_path, make, match):
    with pytest.raises(CorpusNotFoundError, match=match):
        unlabelled_items(make(tmp_path))


def test_extract_adds_unlabelled_items_with_views_and_they_only_train(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=9)
    speech = write_speech_folder(tmp_path / "speech")
    store = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none",
                    progress=False, views="clean,noise:snr=10", unlabelled_root=str(speech))
    assert store.store.n_items == (9 + 4) * 2
    s = open_store(str(tmp_path / "s.zarr"))
    items = s.items
    unl = items[items["utt_id"].str.startswith("unlabelled/")]
    assert len(unl) == 8 and (unl["label"] == "").all() and set(unl["aug_type"]) == {"clean", "noise"}
    # a pseudo-speaker has no labelled row: it is never a test speaker, and its rows always train
    for fold in make_folds(items, "loso"):
        assert not items.iloc[fold.test]["utt_id"].str.startswith("unlabelled/").any()
    assert set(items.iloc[make_folds(items, "loso")[0].train]["speaker"]) >= {"unlabelled/talker_a", "unlabelled/"}


def test_cli_unlabelled_root_counts_and_clash(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=6)
    speech = write_speech_folder(tmp_path / "speech")
    runner = CliRunner()
    r = runner.invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store", str(tmp_path / "s.zarr"),
                                      "--audio-model", "logmel", "--text-model", "none", "--quiet",
                                      "--unlabelled-root", str(speech)])
    assert r.exit_code == 0, r.output
    info = json.loads(runner.invoke(featstore_cli, ["info", str(tmp_path / "s.zarr"), "--json"]).output)
    assert info["n_items"] == 10 and info["n_unlabelled"] == 4 and info["speakers"] == 3 + 3
    # an utt_id the corpus already has is a one-line error, and nothing is written
    clash = tmp_path / "clash.csv"
    pd.DataFrame([{"path": str(speech / "loose.wav"), "label": "sad", "speaker": "s0",
                   "utt_id": "unlabelled/loose"}]).to_csv(clash, index=False)
    r = runner.invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(clash), "--store", str(tmp_path / "c.zarr"),
                                      "--audio-model", "logmel", "--text-model", "none", "--quiet",
                                      "--unlabelled-root", str(speech)])
    assert r.exit_code != 0 and "Traceback" not in r.output and "already in the corpus" in r.output
    assert not (tmp_path / "c.zarr").exists()
