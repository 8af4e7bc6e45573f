"""Corpus adapters on tiny fixture trees in each native layout (+ EmoDB for real when present)."""

from __future__ import annotations

import math
import os

import pytest

from mirage.featstore.corpora import corpus_names, get_corpus, list_corpora
from mirage.featstore.corpora.base import Corpus
from mirage.featstore.errors import ConfigError, CorpusFormatError, CorpusNotFoundError, UnknownNameError
from mirage.featstore.items import CANONICAL_LABELS, ITEM_COLUMNS
from tests.conftest import shared_corpus
from tests.fixtures import corpora as fx

NATIVE = ["msp-podcast", "iemocap", "msp-improv", "emodb", "ravdess", "crema-d"]


def _check_table(df, extras=()):
    assert list(df.columns[: len(ITEM_COLUMNS)]) == list(ITEM_COLUMNS)
    for col in extras:
        assert col in df.columns, col
    assert df["utt_id"].is_unique
    assert list(df["utt_id"]) == sorted(df["utt_id"])
    assert all(os.path.isabs(p) for p in df["path"])
    return {r.utt_id: r for r in df.itertuples(index=False)}


# -- registry ---------------------------------------------------------------------------------

def test_registry_lists_every_required_corpus():
    names = corpus_names()
    assert set(names) == {"demo", "msp-podcast", "iemocap", "msp-improv", "emodb", "ravdess", "crema-d", "csv"}
    corpora = list_corpora()
    assert [c.name for c in corpora] == names
    for c in corpora:
        assert isinstance(c, Corpus)
        assert c.description and "\n" not in c.description
        assert c.needs_root is (c.name != "demo")
        assert c.eval_protocol in ("loso", "session", "official")
    assert get_corpus("iemocap").eval_protocol == "session"
    assert get_corpus("msp-podcast").eval_protocol == "official"


def test_get_corpus_is_lenient_about_spelling_and_strict_about_names():
    assert get_corpus("MSP_Podcast").name == "msp-podcast"
    assert get_corpus("cremad").name == "crema-d"
    with pytest.raises(UnknownNameError) as exc:
        get_corpus("emodbb")
    msg = str(exc.value)
    assert "emodbb" in msg and "emodb" in msg and "msp-podcast" in msg and "\n" not in msg
    assert isinstance(exc.value, KeyError)
    assert get_corpus("demo", n_speakers=4).n_speakers == 4
    with pytest.raises(ConfigError, match="n_speakers"):
        get_corpus("emodb", n_speakers=4)


@pytest.mark.parametrize("name", NATIVE + ["csv"])
def test_missing_root_says_what_to_pass(name, tmp_path):
    corpus = get_corpus(name)
    with pytest.raises(CorpusNotFoundError, match="--root") as exc:
        corpus.load_items(None)
    assert "\n" not in str(exc.value)
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusNotFoundError, match="--root") as exc:
        corpus.load_items(missing)
    assert str(missing) in str(exc.value)


@pytest.mark.parametrize("name", NATIVE)
def test_empty_root_is_not_found(name, tmp_path):
    with pytest.raises(CorpusNotFoundError):
        get_corpus(name).load_items(tmp_path)


# -- EmoDB ------------------------------------------------------------------------------------

def test_emodb_fixture(tmp_path):
    df = get_corpus("emodb").load_items(fx.make_emodb(tmp_path))
    rows = _check_table(df, extras=("gender", "text_id"))
    assert set(rows) == set(fx.EMODB_FILES)          # readme_clip.wav left out
    for stem, (spk, label, text_id, gender) in fx.EMODB_FILES.items():
        r = rows[stem]
        assert (r.speaker, r.label, r.text_id, r.gender, r.split) == (spk, label, text_id, gender, "train")
    assert rows["03a01Fa"].text == "Der Lappen liegt auf dem Eisschrank."
    assert rows["16b10Ab"].text == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert rows["03a01Fa"].duration_s == pytest.approx(fx.WAV_SECONDS)
    assert math.isnan(rows["11a05Fa"].duration_s)     # corrupt wav: listed, NaN duration


@pytest.mark.realdata
def test_emodb_real_copy():
    df = get_corpus("emodb").load_items(shared_corpus("emodb"))
    assert len(df) == 535
    assert df["speaker"].nunique() == 10
    assert set(df["label"]) == {"angry", "boredom", "disgust", "fear", "happy", "sad", "neutral"}
    assert df["text"].str.len().gt(0).all() and df["text_id"].nunique() == 10
    assert df["duration_s"].between(1.9, 2.1).all()   # the damaged copy: every clip 2.0 s
    assert set(df.loc[df["speaker"] == "03", "gender"]) == {"male"}


# -- RAVDESS ----------------------------------------------------------------------------------

def test_ravdess_fixture(tmp_path):
    root = fx.make_ravdess(tmp_path)
    df = get_corpus("ravdess").load_items(root)
    rows = _check_table(df, extras=("gender", "intensity"))
    assert set(rows) == set(fx.RAVDESS_FILES)          # song left out by default
    for stem, (spk, label, intensity, gender, text) in fx.RAVDESS_FILES.items():
        r = rows[stem]
        assert (r.speaker, r.label, r.intensity, r.gender, r.text) == (spk, label, intensity, gender, text)
    with_song = get_corpus("ravdess", include_song=True).load_items(root)
    assert fx.RAVDESS_SONG in set(with_song["utt_id"]) and len(with_song) == len(df) + 1


# -- CREMA-D ----------------------------------------------------------------------------------

def test_crema_d_fixture(tmp_path):
    df = get_corpus("crema-d").load_items(fx.make_crema_d(tmp_path))
    rows = _check_table(df, extras=("intensity", "gender"))
    assert set(rows) == set(fx.CREMA_FILES)
    for stem, (spk, label, intensity, gender, text) in fx.CREMA_FILES.items():
        r = rows[stem]
        assert (r.speaker, r.label, r.intensity, r.gender, r.text) == (spk, label, intensity, gender, text)


def test_crema_d_without_demographics_and_malformed_demographics(tmp_path):
    root = fx.make_crema_d(tmp_path, demographics=False)
    assert set(get_corpus("crema-d").load_items(root)["gender"]) == {"unknown"}
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male\n")
    with pytest.raises(CorpusFormatError, match=r"VideoDemographics.csv line 2: expected 5 fields, got 3"):
        get_corpus("crema-d").load_items(root)


# -- MSP-Podcast ------------------------------------------------------------------------------

def test_msp_podcast_fixture(tmp_path):
    df = get_corpus("msp-podcast").load_items(fx.make_msp_podcast(tmp_path))
    rows = _check_table(df, extras=("arousal", "valence", "dominance", "gender"))
    assert set(rows) == set(fx.MSP_PODCAST_EXPECTED)   # X row and the row without audio left out
    for utt, (label, spk, gender, split, arousal) in fx.MSP_PODCAST_EXPECTED.items():
        r = rows[utt]
        assert (r.label, r.speaker, r.gender, r.split) == (label, spk, gender, split)
        assert r.arousal == pytest.approx(arousal)
    assert rows["MSP-PODCAST_0001_0008"].text == "transcript of MSP-PODCAST_0001_0008"
    assert rows["MSP-PODCAST_0002_0001"].text == ""
    assert rows["MSP-PODCAST_0001_0009"].valence == pytest.approx(2.0)
    assert df["duration_s"].dropna().size == len(df)


def test_msp_podcast_malformed_line_is_named(tmp_path):
    bad = fx.MSP_PODCAST_ROWS[:5] + ["MSP-PODCAST_0009_0001.wav,N,4.0"]
    root = fx.make_msp_podcast(tmp_path, rows=bad)
    with pytest.raises(CorpusFormatError) as exc:
        get_corpus("msp-podcast").load_items(root)
    msg = str(exc.value)
    assert "labels_consensus.csv line 7: expected 8 fields, got 3" in msg and "\n" not in msg


@pytest.mark.parametrize("row, expect", [
    ("MSP-PODCAST_0009_0001.wav,Q,4.0,4.0,4.0,1,Male,Train", "line 2: expected EmoClass"),
    ("MSP-PODCAST_0009_0001.wav,N,high,4.0,4.0,1,Male,Train", "line 2: expected a number in EmoAct"),
])
def test_msp_podcast_bad_values(tmp_path, row, expect):
    root = fx.make_msp_podcast(tmp_path, rows=[row])
    with pytest.raises(CorpusFormatError, match=expect):
        get_corpus("msp-podcast").load_items(root)


def test_msp_podcast_missing_label_file_is_named(tmp_path):
    root = fx.make_msp_podcast(tmp_path)
    (root / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(CorpusNotFoundError, match="labels_consensus.csv"):
        get_corpus("msp-podcast").load_items(root)


# -- IEMOCAP ----------------------------------------------------------------------------------

def test_iemocap_fixture(tmp_path):
    df = get_corpus("iemocap").load_items(fx.make_iemocap(tmp_path))
    rows = _check_table(df, extras=("session", "gender", "arousal"))
    assert set(rows) == set(fx.IEMOCAP_EXPECTED)       # fru and xxx left out
    for utt, (label, spk, session, gender, text) in fx.IEMOCAP_EXPECTED.items():
        r = rows[utt]
        assert (r.label, r.speaker, r.session, r.gender, r.text) == (label, spk, session, gender, text)
    assert set(df["label"]) == {"neutral", "happy", "sad", "angry"}
    r = rows["Ses01F_impro01_M001"]
    assert (r.valence, r.arousal, r.dominance) == (1.5, 4.0, 4.0)


def test_iemocap_malformed_turn_line(tmp_path):
    root = fx.make_iemocap(tmp_path)
    f = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro03.txt"
    lines = f.read_text().splitlines()
    lines[2] = "[6.2901 - 8.2357]\tSes02F_impro03_F000\thap"       # V, A, D missing
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusFormatError, match=r"Ses02F_impro03.txt line 3: expected"):
        get_corpus("iemocap").load_items(root)
    lines[2] = "[6.2901 - 8.2357]\tSes02F_impro03_F000\thappy\t[1.0, 2.0, 3.0]"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusFormatError, match=r"line 3: expected an emotion code .* got 'happy'"):
        get_corpus("iemocap").load_items(root)


def test_iemocap_missing_label_folder(tmp_path):
    root = fx.make_iemocap(tmp_path)
    import shutil

    shutil.rmtree(root / "Session2" / "dialog" / "EmoEvaluation")
    with pytest.raises(CorpusNotFoundError, match="EmoEvaluation"):
        get_corpus("iemocap").load_items(root)


# -- MSP-IMPROV -------------------------------------------------------------------------------

@pytest.mark.parametrize("label_name", ["Evaluation.txt", "Evalution.txt"])
def test_msp_improv_fixture(tmp_path, label_name):
    df = get_corpus("msp-improv").load_items(fx.make_msp_improv(tmp_path, label_name=label_name))
    rows = _check_table(df, extras=("session", "gender", "target", "scenario", "arousal"))
    assert set(rows) == set(fx.MSP_IMPROV_EXPECTED)    # X left out
    for utt, (label, spk, session, gender, target, scenario, arousal) in fx.MSP_IMPROV_EXPECTED.items():
        r = rows[utt]
        assert (r.label, r.speaker, r.session, r.gender, r.target, r.scenario) == \
            (label, spk, session, gender, target, scenario)
        assert r.arousal == pytest.approx(arousal)
    assert rows["MSP-IMPROV-S01A-F01-R-FM01"].text == "How can you not see it?"
    assert rows["MSP-IMPROV-S12S-M06-T-MF02"].text == ""


def test_msp_improv_malformed_and_missing(tmp_path):
    bad = fx.MSP_IMPROV_EVAL.replace("UTD-IMPROV-S12S-M06-T-MF02.avi; S;", "UTD-IMPROV-S12S-M06-T-MF02.avi; Q;")
    root = fx.make_msp_improv(tmp_path, evaluation=bad)
    with pytest.raises(CorpusFormatError, match=r"Evaluation.txt line 11: expected a consensus class"):
        get_corpus("msp-improv").load_items(root)
    (root / "Evaluation.txt").unlink()
    with pytest.raises(CorpusNotFoundError, match="Evaluation.txt"):
        get_corpus("msp-improv").load_items(root)


# -- csv --------------------------------------------------------------------------------------

def test_csv_table(tmp_path):
    table = fx.make_csv(tmp_path)
    df = get_corpus("csv").load_items(table)
    rows = _check_table(df, extras=("age",))
    assert set(rows) == {"a", "b", "c", "d"}
    assert rows["a"].label == "angry" and rows["b"].label == "happy"
    assert rows["d"].label == "frustrated"                       # non-canonical labels kept
    assert rows["d"].path == str(table.parent / "clips" / "sub" / "d.wav")
    assert (rows["c"].split, rows["c"].text, rows["c"].speaker) == ("test", "Fine", "spk2")
    assert rows["a"].duration_s == pytest.approx(fx.WAV_SECONDS)
    assert df["age"].tolist() == [31, 31, 45, 45]
    # a folder holding items.csv works too
    assert len(get_corpus("csv").load_items(table.parent)) == 4


def test_csv_table_repeated_stems_and_aliases(tmp_path):
    text = "file,emotion,speaker_id\nclips/a.wav,sad,s1\nclips/sub/a.wav,ang,s2\nmissing.wav,neu,s2\n"
    df = get_corpus("csv").load_items(fx.make_csv(tmp_path, text=text))
    assert list(df["utt_id"]) == ["clips/a", "clips/sub/a", "missing"]
    assert list(df["label"]) == ["sad", "angry", "neutral"]
    assert math.isnan(df.loc[df["utt_id"] == "missing", "duration_s"].item())


@pytest.mark.parametrize("text, expect", [
    ("path,label\na.wav,sad\n", r"items.csv line 1: expected columns path,label,speaker"),
    ("path,label,speaker\nclips/a.wav,sad,s1\nclips/b.wav,sad\n", r"items.csv line 3: expected 3 fields, got 2"),
    ("path,label,speaker\nclips/a.wav,sad,\n", r"items.csv line 2: expected a value in speaker"),
    ("path,label,speaker\n", r"expected at least one data row"),
])
def test_csv_table_malformed(tmp_path, text, expect):
    with pytest.raises(CorpusFormatError, match=expect):
        get_corpus("csv").load_items(fx.make_csv(tmp_path, text=text))


def test_csv_table_empty_label_is_unlabelled(tmp_path):
    from mirage.featstore.items import labelled_mask

    text = "path,label,speaker\nclips/a.wav,sad,s1\nclips/b.wav,,s1\n"
    df = get_corpus("csv").load_items(fx.make_csv(tmp_path, text=text))
    assert list(df["label"]) == ["sad", ""]
    assert labelled_mask(df["label"]).tolist() == [True, False]


def test_native_labels_are_canonical(tmp_path):
    builders = {"emodb": fx.make_emodb, "ravdess": fx.make_ravdess, "crema-d": fx.make_crema_d,
                "msp-podcast": fx.make_msp_podcast, "iemocap": fx.make_iemocap,
                "msp-improv": fx.make_msp_improv}
    for name, build in builders.items():
        df = get_corpus(name).load_items(build(tmp_path / name))
        assert set(df["label"]) <= set(CANONICAL_LABELS), name
