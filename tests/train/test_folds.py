from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mirage.featstore.errors import ConfigError, LeakageError
from mirage.train.folds import assign_shards, make_folds


def _items(n_spk=4, per=6, session=False, splits=None):
    rows = []
    for s in range(n_spk):
        for i in range(per):
            r = {"utt_id": f"{s}_{i}", "speaker": f"S{s}", "label": "ab"[i % 2], "split": (splits or {}).get(s, "train")}
            if session:
                r["session"] = s // 2 + 1
            rows.append(r)
    return pd.DataFrame(rows)


def test_loso_covers_each_speaker_once():
    items = _items()
    folds = make_folds(items, {"corpus": "emodb"}, "loso")
    assert [f.test_speakers for f in folds] == [("S0",), ("S1",), ("S2",), ("S3",)]
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(items)))
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert set(items["speaker"].iloc[f.train]) == {"S0", "S1", "S2", "S3"} - set(f.test_speakers)


def test_iemocap_leaves_one_session_out():
    items = _items(session=True)
    folds = make_folds(items, {"corpus": "iemocap"}, "loso")
    assert [f.name for f in folds] == ["session=1", "session=2"]
    assert folds[0].test_speakers == ("S0", "S1")
    # a session column alone (not IEMOCAP) still means leave-one-speaker-out
    assert len(make_folds(items, {"corpus": "msp-improv"}, "loso")) == 4


def test_official_split_and_errors():
    items = _items(splits={0: "test1", 1: "dev", 3: "test2"})
    folds = make_folds(items, {}, "official")
    assert [f.name for f in folds] == ["split=test1", "split=test2"]
    assert set(items["split"].iloc[folds[0].train]) == {"train"}
    with pytest.raises(ConfigError, match="--eval loso"):
        make_folds(_items(), {}, "official")
    with pytest.raises(ConfigError, match="expected one of"):
        make_folds(_items(), {}, "kfold")
    with pytest.raises(ConfigError, match="at least 2"):
        make_folds(_items(n_spk=1), {}, "loso")


def test_assign_shards_per_fold_and_leakage():
    folds = make_folds(_items(), {}, "loso")
    shards = pd.DataFrame({"path_abs": [f"g{s}" for s in range(4)],
                           "trained_speakers": [[f"S{o}" for o in range(4) if o != s] for s in range(4)]})
    per = assign_shards(folds, shards)
    assert {k: v["path_abs"].tolist() for k, v in per.items()} == {f"speaker=S{s}": [f"g{s}"] for s in range(4)}
    with pytest.raises(LeakageError, match="S2"):
        assign_shards(folds, shards.drop(index=2))
    everyone = pd.DataFrame({"path_abs": ["all"], "trained_speakers": [["S0", "S1", "S2", "S3"]]})
    with pytest.raises(LeakageError, match="exclude-speakers"):
        assign_shards(folds, everyone)
    with pytest.raises(LeakageError, match="every fold"):
        assign_shards(folds, pd.concat([shards, everyone], ignore_index=True))
    with pytest.raises(LeakageError, match="trained_speakers"):
        assign_shards(folds, shards.drop(columns="trained_speakers"))
