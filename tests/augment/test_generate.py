"""augment generate: counts, MI filtering, determinism, relocation, resume, text arrays."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from mirage.augment import shards
from mirage.augment.generate import generate
from mirage.augment.shards import read_manifest
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store, verify_store


def _tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


@pytest.fixture(scope="module")
def synth(trained_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "synth"
    res = generate(str(trained_model), str(out), n="4x", min_mi=0.0, shard_size=200, seed=0, progress=False)
    return out, res


def test_4x_count_and_manifest(synth):
    out, res = synth
    assert res.n_items == 4 * 192 and res.n_shards == 4 and res.complete
    df = read_manifest(str(out))
    assert df["n_items"].tolist() == [200, 200, 200, 168]
    assert df["path"].tolist() == [f"shard-{i:05d}.zarr" for i in range(4)]
    assert all(os.path.isabs(p) for p in df["path_abs"])
    row = df.iloc[0]
    assert sum(row["label_counts"].values()) == 200
    assert row["trained_speakers"] == ["s01", "s02", "s03", "s04"]
    assert row["mi_y_ceiling_nats"] == pytest.approx(np.log(4))
    assert 0 <= row["mi_score"] <= 1 and np.isfinite(row["mi_t_nats"])
    totals = pd.DataFrame(list(df["label_counts"])).sum()
    assert totals.to_dict() == {"angry": 192, "happy": 192, "neutral": 192, "sad": 192}  # the training prior, exactly
    assert read_manifest(str(out / "manifest.parquet"))["path"].tolist() == df["path"].tolist()


def test_shard_is_a_feature_store(synth, trained_model):
    out, _ = synth
    with open_store(str(out / "shard-00000.zarr")) as s:
        assert verify_store(s) == []
        assert s.metadata["kind"] == "synthetic"
        assert {"audio", "text", "text_pred", "mi_pointwise", "mi_score"} <= set(s.array_names)
        assert s.dim("audio") == 32 and s.dim("text") == 16 and s.dim("text_pred") == 16
        items = s.items
        assert items["utt_id"].iloc[0] == "syn-0-00000-000000"
        assert (items["speaker"] == "synthetic").all() and (items["split"] == "synthetic").all()
        assert items["text"].str.contains("sentence").all() and items["text_utt_id"].str.startswith("s0").all()
        # the conditioning text is a real training text embedding, byte for byte
        from mirage.augment.checkpoint import load_checkpoint

        b = load_checkpoint(str(trained_model))
        codes = b.codes.set_index("utt_id")
        first = items.iloc[0]
        row = codes.index.get_loc(first["text_utt_id"])
        assert np.array_equal(s.read("text")[0], b.tensors["text_codes"][row])
        ps = s.read("mi_score")
        assert ps.shape == (200,) and (ps >= 0).all() and (ps <= 1).all()


def test_min_mi_floor(trained_model, tmp_path):
    res = generate(str(trained_model), str(tmp_path / "s"), n=300, min_mi=0.5, shard_size=100, progress=False)
    df = read_manifest(str(tmp_path / "s"))
    assert res.n_items == 300 and (df["mi_score"] >= 0.5).all()


def test_impossible_min_mi_reports_shortfall(cgan_model, tmp_path):
    res = generate(str(cgan_model), str(tmp_path / "s"), n=200, min_mi=0.9, shard_size=100, max_attempts=2,
                   progress=False)
    assert res.n_items == 0 and not res.complete and res.n_rejected == 4
    assert "produced 0 of 200" in res.message and "--min-mi 0.9" in res.message and "2 attempts" in res.message
    assert read_manifest(str(tmp_path / "s")).empty


def test_read_manifest_min_mi_filter(synth):
    out, _ = synth
    df = read_manifest(str(out))
    assert len(read_manifest(str(out), min_mi=float(df["mi_score"].max()) + 1e-9)) == 0
    assert len(read_manifest(str(out), min_mi=0.0)) == 4


def test_deterministic_wherever_the_output_is(trained_model, synth, tmp_path):
    out, _ = synth
    other = tmp_path / "elsewhere" / "x"
    generate(str(trained_model), str(other), n="4x", min_mi=0.0, shard_size=200, seed=0, progress=False)
    a, b = _tree(out), _tree(other)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    third = tmp_path / "seed1"
    generate(str(trained_model), str(third), n="4x", shard_size=200, seed=1, progress=False)
    assert read_manifest(str(third))["shard_content_hash"].tolist() != read_manifest(str(out))["shard_content_hash"].tolist()


def test_moved_shard_set_is_readable(synth, tmp_path):
    out, _ = synth
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    df = read_manifest(str(moved))
    assert all(p.startswith(str(moved)) for p in df["path_abs"])
    with open_store(df["path_abs"].iloc[-1]) as s:
        assert s.n_items == 168


def test_resume_after_a_kill(trained_model, synth, tmp_path, monkeypatch):
    out, _ = synth
    target = tmp_path / "resumed"
    import mirage.augment.generate as g

    real_write = g._write_shard

    def _dies_on_slot_2(*a, **k):
        if k["slot"] == 2:
            raise KeyboardInterrupt  # as if killed while writing shard 2
        return real_write(*a, **k)

    monkeypatch.setattr(g, "_write_shard", _dies_on_slot_2)
    with pytest.raises(KeyboardInterrupt):
        generate(str(trained_model), str(target), n="4x", shard_size=200, seed=0, progress=False)
    listed = read_manifest(str(target))["path"].tolist()
    assert "shard-00002.zarr" not in listed and listed[:2] == ["shard-00000.zarr", "shard-00001.zarr"]
    monkeypatch.setattr(g, "_write_shard", real_write)
    # Leftovers of a kill at other moments: a temp folder, and a shard renamed but not yet listed.
    shutil.copytree(out / "shard-00003.zarr", target / ".tmp-shard-00003.zarr")
    shutil.copytree(out / "shard-00002.zarr", target / "shard-00002.zarr")
    (target / "shard-00002.zarr" / "mirage.json").write_text("{}")  # partial content must not survive
    res = generate(str(trained_model), str(target), n="4x", shard_size=200, seed=0, progress=False)
    assert res.complete and res.n_shards == 4
    a, b = _tree(out), _tree(target)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_rerun_of_a_finished_set_is_a_no_op(trained_model, synth):
    out, _ = synth
    before = _tree(out)
    res = generate(str(trained_model), str(out), n="4x", shard_size=200, seed=0, progress=False)
    assert res.complete and _tree(out) == before


def test_other_arguments_into_the_same_dir_are_refused(trained_model, synth, tmp_path):
    out, _ = synth
    with pytest.raises(ConfigError, match="another generate run"):
        generate(str(trained_model), str(out), n="4x", shard_size=200, seed=5, progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    res = generate(str(trained_model), str(copy), n=50, shard_size=200, seed=5, progress=False, overwrite=True)
    assert res.n_items == 50 and sorted(p.name for p in copy.iterdir()) == ["manifest.parquet", "shard-00000.zarr"]


def test_text_free_generation(ser_model, tmp_path):
    res = generate(str(ser_model), str(tmp_path / "s"), n="1x", progress=False)
    with open_store(str(tmp_path / "s" / "shard-00000.zarr")) as s:
        assert sorted(s.array_names) == ["audio", "mi_pointwise", "mi_score"]
        assert (s.items["text"] == "").all()
    df = read_manifest(str(tmp_path / "s"))
    assert res.n_items == 192 and np.isnan(df["mi_t_nats"].iloc[0])


def test_balanced_and_band(trained_model, tmp_path):
    generate(str(trained_model), str(tmp_path / "b"), n=400, balanced=True, shard_size=400, progress=False)
    counts = read_manifest(str(tmp_path / "b"))["label_counts"].iloc[0]
    assert counts == {"angry": 100, "happy": 100, "neutral": 100, "sad": 100}
    res = generate(str(trained_model), str(tmp_path / "band"), n=200, mi_band="0.2,0.9", progress=False)
    with open_store(str(tmp_path / "band" / "shard-00000.zarr")) as s:
        ps = s.read("mi_score")
    assert res.n_items > 0
    assert ((ps >= 0.2) & (ps <= 0.9)).all()  # the stored per-sample scores are the ones filtered on


def test_generate_checks_store_dims(trained_model, tmp_path):
    from tests.augment.conftest import make_store

    make_store(tmp_path / "other.zarr", audio_dim=20).close()
    with pytest.raises(ConfigError, match="audio dim 32"):
        generate(str(trained_model), str(tmp_path / "s"), n=10, store=str(tmp_path / "other.zarr"), progress=False)


@pytest.mark.parametrize("kw,match", [({"n": "abc"}, "--n: expected Nx or a positive integer, got 'abc'"),
                                      ({"min_mi": 1.5}, "--min-mi"), ({"shard_size": 0}, "--shard-size"),
                                      ({"mi_band": "0.9,0.1"}, "--mi-band")])
def test_bad_generate_arguments(trained_model, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        generate(str(trained_model), str(tmp_path / "s"), progress=False, **kw)


def test_manifest_lists_no_partial_shard(synth):
    out, _ = synth
    rows, run = shards.raw_rows(shards.manifest_location(str(out))[0])
    assert run["n_requested"] == 768 and run["generator"] == rows[0]["generator"]
    for r in rows:
        with open_store(str(out / r["path"])) as s:
            assert s.metadata["content_hash"] == r["shard_content_hash"] and s.n_items == r["n_items"]


def test_fsspec_urls_for_model_and_shards(store_path):
    import uuid

    from mirage.augment.fit import fit_generator

    base = f"memory://augment-test-{uuid.uuid4().hex[:8]}"
    model = fit_generator(str(store_path), f"{base}/gen", epochs=2, align_epochs=2, hidden=32, progress=False)
    assert model == f"{base}/gen"
    res = generate(model, f"{base}/synth", n=100, shard_size=64, progress=False)
    df = read_manifest(f"{base}/synth/manifest.parquet")
    assert res.n_items == 100 and df["path_abs"].tolist() == [f"{base}/synth/shard-0000{i}.zarr" for i in range(2)]
    with open_store(df["path_abs"].iloc[1]) as s:
        assert s.n_items == 36


def test_lazy_package_api():
    import mirage.augment as augment

    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import GenerateResult

    assert augment.fit_generator is fit_generator and augment.read_manifest is read_manifest
    assert augment.GenerateResult is GenerateResult


@pytest.mark.parametrize("model, kw", [
    ("trained_model", {"n": 5000, "shard_size": 5000}),  # 4096-row chunks: a padded edge chunk
    ("trained_model", {"n": 400, "shard_size": 150, "mi_band": (0.2, 0.9)}),  # shards short of their quota
    ("ser_model", {"n": 700, "shard_size": 300}),
])
def test_direct_shard_files_match_write_store(model, kw, request, tmp_path, monkeypatch):
    from mirage.augment import shard_write

    trees = []
    for direct in (False, True):
        monkeypatch.setattr(shard_write, "DIRECT_WRITES", direct)
        out = tmp_path / f"direct{int(direct)}"
        generate(str(request.getfixturevalue(model)), str(out), seed=2, progress=False, **kw)
        trees.append(_tree(out))
    slow, fast = trees
    assert slow.keys() == fast.keys() and [k for k in slow if slow[k] != fast[k]] == []


def _crafted_shard(n=300):
    rng = np.random.default_rng(7)
    items = pd.DataFrame({"utt_id": [f"syn-0-00000-{i:06d}" for i in range(n)], "path": "", "speaker": "synthetic",
                          "label": ["angry", "sad"] * (n // 2), "split": "synthetic", "duration_s": np.nan, "text": ""})
    arrays = {"audio": rng.standard_normal((n, 24)).astype(np.float32), "mi_score": rng.random(n).astype(np.float32)}
    return items, arrays, {"kind": "synthetic", "corpus": "crafted"}


def test_shard_files_pin_the_content_hash_and_match_write_store(tmp_path):
    from mirage.augment.shard_files import write_shard_files
    from mirage.featstore.store import write_store

    items, arrays, meta = _crafted_shard()
    got = write_shard_files(str(tmp_path / "direct.zarr"), items=items, arrays=arrays, metadata=meta, chunk_rows=128)
    # Pinned before the direct writer existed (write_store of the same rows): the hash covers
    # only ids, labels, speakers and float values, so it does not move with library versions.
    assert got == "a9bf33dad881847e955e8823dae66d29668a98754a1fd3e628476015fa13580c"
    write_store(str(tmp_path / "ref.zarr"), items=items, arrays=arrays, metadata=meta, chunk_rows=128).close()
    a, b = _tree(tmp_path / "ref.zarr"), _tree(tmp_path / "direct.zarr")
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    with open_store(str(tmp_path / "direct.zarr")) as s:
        assert verify_store(s) == [] and np.array_equal(s.read_rows("audio", 0, 300), arrays["audio"])


def test_all_fill_chunks_go_through_write_store(tmp_path):
    from mirage.augment.shard_files import can_write_direct
    from mirage.augment.shard_write import _store_local

    items, arrays, meta = _crafted_shard()
    assert can_write_direct(arrays, 128)
    arrays["mi_score"][128:256] = 0.0  # zarr does not write a chunk that holds only the fill value
    assert not can_write_direct(arrays, 128)
    (tmp_path / "out").mkdir()
    _store_local(str(tmp_path / "out" / ".tmp-s.zarr"), str(tmp_path / "out" / "s.zarr"), items=items, arrays=arrays,
                 meta=meta, chunk=128)
    with open_store(str(tmp_path / "out" / "s.zarr")) as s:
        assert verify_store(s) == [] and np.array_equal(s.read_rows("mi_score", 0, 300), arrays["mi_score"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.zarr"]


def test_manifest_is_rewritten_per_batch_not_per_shard(trained_model, synth, tmp_path, monkeypatch):
    import mirage.augment.generate as g

    out, _ = synth
    calls = []
    real = shards.write_manifest
    monkeypatch.setattr(g, "_COMMIT_EVERY_S", 1e9)
    monkeypatch.setattr(shards, "write_manifest", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k)))
    target = tmp_path / "batched"
    generate(str(trained_model), str(target), n="4x", min_mi=0.0, shard_size=200, seed=0, progress=False)
    assert calls == [4]  # one commit of all four shards, at the end
    a, b = _tree(out), _tree(target)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
