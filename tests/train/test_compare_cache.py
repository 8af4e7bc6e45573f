"""Fingerprint caches of train compare (train.methods.cache): reruns reuse jobs and fold results."""

from __future__ import annotations

import json


from tests.train.test_compare import _fake_generator

FAST = {"max_iter": 30}


def test_a_rerun_into_the_same_out_reuses_every_fold_result(four_speaker_store, tmp_path):
    from mirage.train.compare import compare

    kw = dict(methods="none,noise,calibrate,auto", n="1x", seed=0, select="inner", classifier_options=FAST)
    first = compare(four_speaker_store, str(tmp_path / "c"), **kw)
    body = (tmp_path / "c" / "compare.json").read_bytes()
    # within one run, auto's inner candidates are the entries --select inner just computed
    assert first.cache_stats["misses"]["fold"] > first.cache_stats["hits"]["fold"] > 0
    second = compare(four_speaker_store, str(tmp_path / "c"), **kw)
    assert second.cache_stats["misses"]["fold"] == 0
    # every outer and inner fold result was reused; auto's folds are its chosen methods' entries
    assert second.cache_stats["hits"]["fold"] == first.cache_stats["misses"]["fold"] + first.cache_stats["hits"]["fold"]
    assert (tmp_path / "c" / "compare.json").read_bytes() == body
    # another seed, another classifier setting: new keys
    third = compare(four_speaker_store, str(tmp_path / "c"), **{**kw, "seed": 1})
    assert third.cache_stats["hits"]["fold"] < second.cache_stats["hits"]["fold"]
    off = compare(four_speaker_store, str(tmp_path / "d"), **kw, cache="off")
    assert off.cache_stats == {} and (tmp_path / "d" / "compare.json").read_bytes() == body


def test_generator_jobs_are_reused_in_place_and_from_a_shared_cache(two_speaker_store, tmp_path, monkeypatch):
    import mirage.train.compare as cmp

    log = tmp_path / "calls.jsonl"

    def n_calls():
        n = len(log.read_text().splitlines()) if log.exists() else 0
        log.unlink(missing_ok=True)
        return n

    monkeypatch.setattr(cmp, "generate_for_fold", _fake_generator(str(log)))
    kw = dict(methods="none,cgan,infogan", n="1x", min_mi=0.5, seed=0)
    cmp.compare(two_speaker_store, str(tmp_path / "a"), **kw)
    assert n_calls() == 4
    body = (tmp_path / "a" / "compare.json").read_bytes()
    res = cmp.compare(two_speaker_store, str(tmp_path / "a"), **kw)
    assert n_calls() == 0 and res.cache_stats["hits"]["job"] == 4 and res.cache_stats["misses"]["fold"] == 0
    assert (tmp_path / "a" / "compare.json").read_bytes() == body
    assert (tmp_path / "a" / "generators" / "cgan" / "speaker-01" / "job.json").exists()
    # a changed setting refits only what it changes (infogan's MI filter; cgan ignores min_mi)
    res = cmp.compare(two_speaker_store, str(tmp_path / "a"), **{**kw, "min_mi": 0.6})
    assert n_calls() == 2 and res.cache_stats["hits"]["job"] == 2
    # a shared cache folder serves runs into other --out folders
    shared = str(tmp_path / "shared")
    cmp.compare(two_speaker_store, str(tmp_path / "b1"), **kw, cache=shared)
    assert n_calls() == 4
    res = cmp.compare(two_speaker_store, str(tmp_path / "b2"), **kw, cache=shared)
    assert n_calls() == 0 and res.cache_stats["hits"] == {"job": 4, "fold": 6}
    assert not (tmp_path / "b2" / "generators").exists()
    assert json.loads((tmp_path / "b2" / "compare.json").read_text())["cgan"]["fold_uar"] == \
        json.loads(body)["cgan"]["fold_uar"]


def test_a_killed_job_is_redone(two_speaker_store, tmp_path, monkeypatch):
    """A job folder without its record (the run died before it finished) is not reused."""
    import mirage.train.compare as cmp

    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(cmp, "generate_for_fold", _fake_generator(str(log)))
    shared = str(tmp_path / "shared")
    cmp.compare(two_speaker_store, str(tmp_path / "a"), methods="none,cgan", n="1x", cache=shared)
    records = sorted((tmp_path / "shared" / "generators").glob("*/job.json"))
    assert len(records) == 2
    records[0].unlink()
    log.unlink()
    res = cmp.compare(two_speaker_store, str(tmp_path / "b"), methods="none,cgan", n="1x", cache=shared)
    assert len(log.read_text().splitlines()) == 1 and res.cache_stats["hits"]["job"] == 1
