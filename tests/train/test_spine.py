"""One spine: a settings object per command (composed for compare), one Runtime passed once."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from mirage.featstore.errors import ConfigError
from mirage.featstore.runtime import Runtime
from mirage.featstore.settings import option_specs, parse_text


def test_compare_with_a_config_and_a_runtime_writes_the_bytes_of_the_keyword_call(four_speaker_store, tmp_path):
    from mirage.train.classifier import ClassifierConfig
    from mirage.train.compare import compare
    from mirage.train.compare_config import CompareConfig

    kw = dict(methods="none,noise", n="1x", seed=3, classifier="linear", classifier_options={"l2": 0.01}, cache="off")
    compare(four_speaker_store, str(tmp_path / "a"), **kw)
    cfg = CompareConfig(methods="none,noise", n="1x", seed=3, cache="off", classifier=ClassifierConfig(l2=0.01))
    compare(four_speaker_store, str(tmp_path / "b"), cfg, runtime=Runtime(progress=False))
    for name in ("compare.json", "config.json", "noise/metrics.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with pytest.raises(ConfigError, match="either config= or settings as keywords"):
        compare(four_speaker_store, str(tmp_path / "c"), cfg, seed=4)


def test_compare_config_composes_the_classifier_and_checks_the_generator_settings_up_front():
    from mirage.train.compare_config import CompareConfig

    cfg = CompareConfig.from_kwargs(methods=["none", "infogan", "none"], classifier="mlp",
                                    classifier_options={"hidden": 32}, generator_options={"epochs": 2})
    assert cfg.method_names == ["none", "infogan"] and cfg.classifier.kind == "mlp" and cfg.classifier.hidden == 32
    assert cfg.generator == {"num_threads": 1, "epochs": 2}  # compare's own default, then what was set
    assert dataclasses.replace(cfg, seed=5).generator == cfg.generator
    for kwargs, message in (({"methods": "none,gan"}, "--methods: expected"), ({"min_mi": 2}, "--min-mi: expected"),
                            ({"methods": "infogan", "generator_options": {"tau": 0}}, "--tau"),
                            ({"methods": "infogan", "generate_options": {"mi_band": "0.9,0.1"}}, "--mi-band"),
                            ({"normalise": "corpus"}, "--normalise"), ({"select": "outer"}, "--select"),
                            ({"baseline_options": {"mixupp": {}}}, "baseline options"), ({"bogus": 1}, "unknown setting")):
        with pytest.raises(ConfigError, match=message):
            CompareConfig.from_kwargs(**kwargs)


def test_runtime_is_validated_once_and_resolves_options_per_url():
    rt = Runtime(storage_options={"anon": True, "s3://results": {"anon": False, "key": "k"}})
    assert rt.options_for("s3://data/x.zarr") == {"anon": True}
    assert rt.options_for("s3://results/run1") == {"anon": False, "key": "k"}
    for kwargs, message in (({"workers": -1}, "--workers"), ({"workers": 2, "scheduler": "tcp://h:1"}, "either --workers"),
                            ({"num_threads": 0}, "--threads"), ({"storage_options": "{}"}, "--storage-options")):
        with pytest.raises(ConfigError, match=message):
            Runtime(**kwargs)
    assert Runtime.resolve(None, workers=0, storage_options=None, progress=False) == Runtime(progress=False)
    assert Runtime.resolve(rt, workers=0, storage_options=None) is rt
    with pytest.raises(ConfigError, match="either runtime= or storage_options="):
        Runtime.resolve(rt, storage_options={"anon": False})


def test_every_extract_setting_is_a_featstore_extract_option_and_checked_in_one_place():
    from mirage.cli.featstore import main as featstore_cli
    from mirage.featstore.extract_config import ExtractConfig

    out = CliRunner().invoke(featstore_cli, ["extract", "--help"], terminal_width=400).output
    specs = option_specs(ExtractConfig)
    assert {s.name for s in specs} == {f.name for f in dataclasses.fields(ExtractConfig)}
    for spec in specs:
        assert spec.flag in out, spec.flag
    assert ExtractConfig(audio_layer="all").audio_layer == "all" and ExtractConfig(audio_layer="3").audio_layer == 3
    for kwargs, message in (({"chunk_rows": 0}, "--chunk-rows: expected a positive number of rows"),
                            ({"limit": -2}, "--limit"), ({"batch_size": 0}, "--batch-size"),
                            ({"audio_layer": "top"}, "--audio-layer"), ({"format": "npz"}, "--format")):
        with pytest.raises(ConfigError, match=message):
            ExtractConfig.from_kwargs(**kwargs)
    with pytest.raises(ConfigError, match="unknown setting"):
        ExtractConfig.from_kwargs(layer=3)


def test_extract_with_a_config_and_a_runtime_equals_the_keyword_call(tmp_path):
    from mirage.featstore.extract import extract
    from mirage.featstore.extract_config import ExtractConfig
    from mirage.featstore.store import open_store

    a = extract("demo", store=str(tmp_path / "a.zarr"), audio_model="logmel", text_model="none", limit=12,
                progress=False, cache_dir=str(tmp_path / "corpus"))
    cfg = ExtractConfig(audio_model="logmel", text_model="none", limit=12)
    b = extract("demo", store=str(tmp_path / "b.zarr"), config=cfg, runtime=Runtime(progress=False, num_threads=1),
                cache_dir=str(tmp_path / "corpus"))
    with open_store(a.store.url) as sa, open_store(b.store.url) as sb:
        assert sa.metadata["content_hash"] == sb.metadata["content_hash"]
    with pytest.raises(ConfigError, match="either config= or settings"):
        extract("demo", store=str(tmp_path / "c.zarr"), config=cfg, limit=3)


def test_key_value_options_take_their_field_types():
    from mirage.augment.config import FitConfig

    assert parse_text(FitConfig, "epochs", "7", flag="--gen-option") == 7
    assert parse_text(FitConfig, "cond_d", "true", flag="--gen-option") is True
    assert parse_text(FitConfig, "epochs", "none", flag="--gen-option") is None
    with pytest.raises(ConfigError, match="--gen-option epochs: expected an int, got 'many'"):
        parse_text(FitConfig, "epochs", "many", flag="--gen-option")
    with pytest.raises(ConfigError, match="--gen-option cond_d: expected a bool"):
        parse_text(FitConfig, "cond_d", "maybe", flag="--gen-option")


def test_a_mistyped_gen_option_is_one_line(four_speaker_store, tmp_path):
    from mirage.cli.train import main as train_cli

    res = CliRunner().invoke(train_cli, ["compare", "--store", four_speaker_store, "--out", str(tmp_path / "o"),
                                         "--methods", "none,infogan", "--gen-option", "epochs=many"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == ["Error: --gen-option epochs: expected an int, got 'many'"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command, cls_path", [("fit", "mirage.train.fit_config:TrainFitConfig"),
                                               ("compare", "mirage.train.compare_config:CompareConfig")])
def test_every_train_setting_is_an_option_of_its_command(command, cls_path):
    import importlib

    from mirage.cli.train import main as train_cli

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    out = CliRunner().invoke(train_cli, [command, "--help"], terminal_width=400).output
    specs = option_specs(cls)
    # every field but the composed objects and the repeatable --synthetic is generated
    assert {s.name for s in specs} == {f.name for f in dataclasses.fields(cls)} - {
        "classifier", "generator", "generation", "baselines", "synthetic", "mtl"}
    for spec in specs:
        assert spec.flag in out, spec.flag


def test_train_fit_rules_live_in_its_settings_object():
    from mirage.train.fit_config import TrainFitConfig

    for kwargs, message in (({"final": True, "synthetic": ["s"]}, "--final: expected real data held in memory"),
                            ({"method": "mtl-aug", "layer": 3}, "--method mtl-aug: expected"),
                            ({"mtl_options": {"w_aug": 0}}, "expected --method mtl-aug"),
                            ({"loader": "stream", "normalise": "speaker"}, "--normalise speaker: expected --loader"),
                            ({"layer": "top"}, "--layer"), ({"max_memory_mb": 0}, "--max-memory-mb")):
        with pytest.raises(ConfigError, match=message):
            TrainFitConfig.from_kwargs(**kwargs)
    with pytest.raises(ConfigError, match="expected no --synthetic with --layer"):
        TrainFitConfig.from_kwargs(synthetic="set/manifest.parquet", layer="weighted")
    cfg = TrainFitConfig.from_kwargs(synthetic="set/manifest.parquet", classifier="mlp")
    assert cfg.synthetic == ("set/manifest.parquet",) and cfg.classifier.kind == "mlp"
    assert TrainFitConfig.from_kwargs(layer="weighted").layer == "weighted" and TrainFitConfig(layer="2").layer == 2


def test_fit_generator_and_generate_take_their_settings_objects(four_speaker_store, tmp_path):
    from mirage.augment.config import FitConfig, GenerateConfig
    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate

    small = dict(epochs=2, align_epochs=2, hidden=16, noise_dim=4, batch_size=16)
    a = fit_generator(four_speaker_store, tmp_path / "ga", progress=False, **small)
    b = fit_generator(four_speaker_store, tmp_path / "gb", config=FitConfig(**small), runtime=Runtime(progress=False))
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes()
    ra = generate(a, tmp_path / "sa", n=40, progress=False)
    rb = generate(b, tmp_path / "sb", config=GenerateConfig(n=40), runtime=Runtime(progress=False))
    assert ra.n_items == rb.n_items == 40
    with pytest.raises(ConfigError, match="either config= or fit settings"):
        fit_generator(four_speaker_store, tmp_path / "gc", config=FitConfig(**small), epochs=3)
    with pytest.raises(ConfigError, match="either config= or generate settings"):
        generate(a, tmp_path / "sc", config=GenerateConfig(n=40), n=20)


def test_generate_options_reach_compare_typed_and_checked(four_speaker_store, tmp_path):
    from mirage.cli.train import main as train_cli

    res = CliRunner().invoke(train_cli, ["compare", "--store", four_speaker_store, "--out", str(tmp_path / "o"),
                                         "--methods", "none,infogan", "--generate-option", "speaker_mix=1"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("Error: --speaker-mix: expected an integer >= 2")
    res = CliRunner().invoke(train_cli, ["compare", "--store", four_speaker_store, "--out", str(tmp_path / "o"),
                                         "--methods", "none,infogan", "--generate-option", "max_rounds=x"])
    assert res.output.strip().splitlines() == ["Error: --generate-option max_rounds: expected an int, got 'x'"]


def test_classifier_options_apply_over_a_given_classifier_in_fit_and_compare():
    from mirage.train.classifier_config import ClassifierConfig
    from mirage.train.compare_config import CompareConfig
    from mirage.train.fit_config import TrainFitConfig

    base = ClassifierConfig(kind="mlp", hidden=32)
    for cls in (TrainFitConfig, CompareConfig):
        cfg = cls.from_kwargs(classifier=base, classifier_options={"l2": 0.5})
        assert (cfg.classifier.kind, cfg.classifier.hidden, cfg.classifier.l2) == ("mlp", 32, 0.5)
    with pytest.raises(ConfigError, match="--l2"):
        TrainFitConfig.from_kwargs(classifier=base, classifier_options={"l2": -1})
