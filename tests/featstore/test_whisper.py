"""Whisper extractors: the CTranslate2 converter, windowed encoding, every layer in the store,
and the real registry weights against CTranslate2's own encoder."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore.errors import ConfigError, MissingDependencyError
from mirage.featstore.extract import extract
from mirage.featstore.extractors import get_audio_extractor, list_extractors
from mirage.featstore.extractors import whisper as whisper_mod
from mirage.featstore.extractors.ct2 import CT2FormatError, encoder_weights
from mirage.featstore.extractors.whisper import WhisperExtractor, convert, source_files
from mirage.featstore.store import open_store
from tests.featstore.test_extract import write_corpus
from tests.fixtures.ct2 import ct2_bytes, write_tiny_ct2

SR = 16000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(converted transformers folder, the random WhisperEncoder it came from)."""
    tmp = tmp_path_factory.mktemp("tiny-whisper")
    paths, net = write_tiny_ct2(tmp / "ct2", parts=2)
    return convert(paths, tmp / "converted"), net


def speech_like(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 110 + 30 * (seed % 5)
    return (0.2 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.normal(size=t.size)).astype("f4")


def test_converter_reads_split_fp16_file_into_transformers_names(tmp_path):
    paths, net = write_tiny_ct2(tmp_path, parts=3)
    w = encoder_weights(paths)
    want = {k: v.detach().numpy().astype(np.float16).astype(np.float32) for k, v in net.state_dict().items()}
    assert set(w.state_dict) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(w.state_dict[key], value, err_msg=key)
    assert (w.d_model, w.n_layers, w.n_heads, w.n_mels, w.max_positions) == (16, 2, 2, 80, 1500)
    assert w.source_dtype == "float16"


@pytest.mark.parametrize("damage", ["truncate", "foreign", "missing_part", "other_spec"])
def test_converter_refuses_damaged_or_foreign_files_in_one_line(tmp_path, damage):
    paths, _ = write_tiny_ct2(tmp_path, parts=2)
    if damage == "truncate":
        paths[1].write_bytes(paths[1].read_bytes()[:1000])
    elif damage == "foreign":
        paths[0].write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    elif damage == "missing_part":
        paths[1].unlink()
    else:
        paths = [tmp_path / "other.bin"]
        paths[0].write_bytes(ct2_bytes({"x": np.zeros(3, np.float32)}, spec="TransformerSpec"))
    with pytest.raises(CT2FormatError) as err:
        encoder_weights(paths)
    assert len(str(err.value).splitlines()) == 1
    assert isinstance(err.value, ValueError)


def _reference_states(net, fe, wave, padded_samples):
    """transformers' own WhisperEncoder forward (needs the 30-s input) pooled over real frames."""
    import torch

    feats = fe([wave], sampling_rate=SR, padding="max_length", max_length=padded_samples, return_tensors="pt")["input_features"]
    with torch.inference_mode():
        out = net(feats, output_hidden_states=True)
    valid = int(np.ceil(len(wave) / 320))
    return np.stack([h[0, :valid].mean(0).numpy() for h in out.hidden_states])


def test_30s_window_matches_transformers_encoder_on_every_layer(tiny):
    folder, net = tiny
    ex = WhisperExtractor(layer="all", window_s=30, folder=folder)
    wave = speech_like(1, 2.3)
    ours = ex.embed_layers([wave])[0]
    ref = _reference_states(net, ex._fe, wave, 30 * SR)
    assert ours.shape == (3, 16)
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=1e-3)
    # the 2-D default is the encoder output (state L, after the final layer norm)
    last = WhisperExtractor(window_s=30, folder=folder).embed([wave])[0]
    np.testing.assert_allclose(last, ref[-1], atol=2e-4, rtol=1e-3)


def test_auto_window_is_batch_independent_and_bounded_for_long_clips(tiny):
    folder, _ = tiny
    ex = WhisperExtractor(window_s="auto", folder=folder, pooling="meanstd")
    a, b = speech_like(2, 1.4), speech_like(3, 3.7)
    alone = ex.embed([a])
    together = ex.embed([b, a])
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)
    assert ex.windows(int(65 * SR)) == [(0, 30 * SR, 30 * SR), (30 * SR, 60 * SR, 30 * SR), (60 * SR, 65 * SR, 5 * SR)]
    assert WhisperExtractor(window_s=10, folder=folder).windows(int(12.5 * SR)) == [(0, 10 * SR, 10 * SR), (10 * SR, int(12.5 * SR), 10 * SR)]
    long = ex.embed([speech_like(4, 65.0)])
    assert long.shape == (1, 32) and np.isfinite(long).all()


@pytest.mark.parametrize("bad", ["0", "31", "2.5", "soon"])
def test_window_setting_is_validated(bad):
    with pytest.raises(ConfigError, match="--window-s"):
        WhisperExtractor(window_s=bad)


def _convert_in_child(paths, target, queue):
    queue.put(str(convert([Path(p) for p in paths], Path(target))))


def test_two_processes_converting_at_once_end_with_one_complete_folder(tmp_path):
    paths, _ = write_tiny_ct2(tmp_path / "ct2")
    target = tmp_path / "cache" / "models" / "tiny"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_convert_in_child, args=([str(p) for p in paths], str(target), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert {queue.get(timeout=5) for _ in procs} == {str(target)}
    assert sorted(x.name for x in target.parent.iterdir()) == ["tiny"]  # no temporary folder left
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "mirage-source.json"} <= {x.name for x in target.iterdir()}


def test_missing_weight_package_is_a_one_line_error_with_the_install_command(monkeypatch):
    monkeypatch.setitem(whisper_mod.SOURCES, "whisper-base", ("no_such_pkg", ("no_such_pkg/model.bin",), "pip install no-such-pkg"))
    with pytest.raises(MissingDependencyError, match="pip install no-such-pkg"):
        get_audio_extractor("whisper-base").dim


def test_extract_all_layers_stores_audio_layers_and_resumes_identically(tmp_path, tiny, monkeypatch):
    folder, _ = tiny
    monkeypatch.setattr(whisper_mod, "converted_folder", lambda name, cache_dir=None: folder)
    table = write_corpus(tmp_path / "corpus", n=20)
    res = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="whisper-base", audio_layer="all",
                  text_model="none", chunk_rows=16, progress=False)
    store = res.store
    layers = store.read("audio_layers")
    assert layers.shape == (20, 3, 16)
    np.testing.assert_array_equal(store.read("audio"), layers[:, 2])
    h5 = extract("csv", root=str(table), store=str(tmp_path / "s.h5"), format="hdf5", audio_model="whisper-base",
                 audio_layer="all", text_model="none", chunk_rows=16, progress=False).store
    assert h5.content_hash() == store.content_hash()
    out = CliRunner().invoke(featstore_cli, ["info", str(tmp_path / "s.zarr"), "--json"])
    info = json.loads(out.output)
    assert info["audio"]["extractor"] == "whisper-base"
    assert info["audio_layers"] == {"n_layers": 3, "dim": 16, "default_layer": 2}
    assert info["arrays"]["audio_layers"] == [3, 16]


def test_extract_refuses_window_for_non_whisper_and_layers_for_logmel(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=4)
    with pytest.raises(ConfigError, match="--window-s"):
        extract("csv", root=str(table), store=str(tmp_path / "a.zarr"), audio_model="logmel", window_s="30", text_model="none")
    with pytest.raises(ConfigError, match="--audio-layer"):
        extract("csv", root=str(table), store=str(tmp_path / "b.zarr"), audio_model="logmel", audio_layer="all", text_model="none")
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_registry_lists_whisper_and_makes_it_the_default():
    names = {e["name"]: e for e in list_extractors()}
    assert {"whisper-base", "whisper-tiny.en"} <= set(names)
    out = CliRunner().invoke(featstore_cli, ["extractors"])
    assert "whisper-base" in out.output and "whisper-tiny.en" in out.output
    assert get_audio_extractor().name == "whisper-base"


def _ct2_folder(name: str, tmp: Path) -> Path:
    """A CTranslate2 model folder (model.bin + config) from the installed package's files."""
    folder = tmp / name
    folder.mkdir()
    paths = source_files(name)
    with open(folder / "model.bin", "wb") as out:
        for p in paths:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out)
    for extra in ("config.json", "vocabulary.txt", "tokenizer.json"):
        if (paths[0].parent / extra).is_file():
            shutil.copy(paths[0].parent / extra, folder / extra)
    return folder


@pytest.mark.parametrize("name,dim", [("whisper-base", 512), ("whisper-tiny.en", 384)])
def test_real_weights_match_ctranslate2_encoder(tmp_path, name, dim):
    ctranslate2 = pytest.importorskip("ctranslate2")
    ex = get_audio_extractor(name, window_s="30")
    assert ex.dim == dim
    ex.load()
    wave = speech_like(5, 3.0)
    feats = ex._fe([wave], sampling_rate=SR, padding="max_length", max_length=30 * SR, return_tensors="pt")["input_features"]
    import torch

    with torch.inference_mode():
        ours = ex.encode(feats)[-1][0].numpy()
    model = ctranslate2.models.Whisper(str(_ct2_folder(name, tmp_path)), device="cpu", compute_type="float32")
    ref = np.asarray(model.encode(ctranslate2.StorageView.from_array(feats.numpy()), to_cpu=True))[0]
    assert ours.shape == ref.shape == (1500, dim)
    assert np.abs(ours - ref).max() < 3e-3
    # and the windowed path keeps the real-audio frames close to the padded one
    auto = get_audio_extractor(name, window_s="auto").embed([wave])[0]
    padded = ex.embed([wave])[0]
    cos = float(auto @ padded / np.linalg.norm(auto) / np.linalg.norm(padded))
    assert cos > 0.9


@pytest.mark.realdata
def test_default_extraction_of_real_emodb_is_whisper_base(tmp_path):
    """The default extractor on real speech (a slice of EmoDB; its fixture twin is
    test_extract_all_layers_stores_audio_layers_and_resumes_identically)."""
    from tests.conftest import shared_corpus

    root = shared_corpus("emodb")
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "emodb", "--root", str(root), "--store",
                                             str(tmp_path / "e.zarr"), "--text-model", "none", "--limit", "12", "--quiet"])
    assert out.exit_code == 0, out.output
    info = json.loads(CliRunner().invoke(featstore_cli, ["info", str(tmp_path / "e.zarr"), "--json"]).output)
    assert info["n_items"] == 12 and info["audio"]["extractor"] == "whisper-base" and info["audio"]["dim"] == 512
    assert info["audio"]["layer"] is None and info["audio"]["window_s"] == 30
    x = open_store(str(tmp_path / "e.zarr")).read("audio")
    assert np.isfinite(x).all() and x.std(axis=0).mean() > 0
