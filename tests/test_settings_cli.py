"""Settings dataclasses are the one home of defaults: the CLI options are generated from their fields."""

from __future__ import annotations

import dataclasses
import json

import click
import pytest
from click.testing import CliRunner

from mirage.augment.config import FitConfig
from mirage.cli.augment import main as augment_cli
from mirage.cli.common import given_settings, settings_options
from mirage.featstore.settings import option_specs, setting


@dataclasses.dataclass(frozen=True)
class _Toy:
    rate: float = setting(0.5, "A rate.")
    steps: int | None = setting(None, "Steps (default: auto).")
    fast: bool = setting(False, "Go fast.", flag="--quick")
    hidden_knob: int = setting(3, "Library only.", cli=False)
    plain: int = 7  # no setting(): never on the command line


@click.command()
@settings_options(_Toy)
@click.option("--other", default="x")
def _toy_cmd(**options):
    settings, rest = given_settings(options, _Toy)
    click.echo(json.dumps({"settings": settings, "rest": rest}))


def _run(*args):
    res = CliRunner().invoke(_toy_cmd, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_only_given_options_reach_the_settings():
    assert _run() == {"settings": {}, "rest": {"other": "x"}}
    assert _run("--rate", "0.25", "--quick", "--steps", "4") == {"settings": {"rate": 0.25, "fast": True, "steps": 4},
                                                                 "rest": {"other": "x"}}
    # giving the default value explicitly still counts as given (and equals the default)
    assert _run("--rate", "0.5")["settings"] == {"rate": 0.5}
    assert _run("--no-quick")["settings"] == {"fast": False}


def test_help_shows_the_dataclass_defaults_and_hides_library_knobs():
    out = CliRunner().invoke(_toy_cmd, ["--help"]).output
    assert "A rate. [default: 0.5]" in out and "--quick / --no-quick" in out and "Go fast. [default: off]" in out
    assert "--hidden-knob" not in out and "--plain" not in out and "--steps INTEGER" in out


def test_every_fit_setting_is_an_augment_fit_option_with_its_default():
    out = CliRunner().invoke(augment_cli, ["fit", "--help"], terminal_width=400).output
    specs = option_specs(FitConfig)
    assert {s.name for s in specs} == {f.name for f in dataclasses.fields(FitConfig)}
    for spec in specs:
        assert spec.flag in out, spec.flag
        if spec.default is not None and spec.kind != "bool":
            assert f"[default: {spec.default}]" in out, spec.name


def test_a_bad_setting_is_one_line_naming_the_flag(tmp_path):
    res = CliRunner().invoke(augment_cli, ["fit", "--store", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "g"),
                                           "--tau", "0"])
    # validation runs on the settings object before the store is opened
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == ["Error: --tau: expected a number > 0, got 0"]


def test_a_field_of_an_unsupported_type_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        shape: tuple = setting((1, 2), "A tuple.")

    with pytest.raises(TypeError, match="expected a float, int, bool or str field"):
        option_specs(Bad)


@pytest.mark.parametrize("command", ["fit", "compare", "cross"])
def test_every_classifier_setting_is_a_train_option(command):
    from mirage.cli.train import main as train_cli
    from mirage.train.classifier import ClassifierConfig

    out = CliRunner().invoke(train_cli, [command, "--help"], terminal_width=400).output
    for spec in option_specs(ClassifierConfig):
        assert spec.flag in out, (command, spec.flag)
    assert "--num-threads" not in out  # fixed for reproducibility: library only


def test_classifier_flags_are_validated_by_the_settings_object(tmp_path):
    from mirage.cli.train import main as train_cli

    for args, message in ((["--synthetic-weight", "-1"], "--synthetic-weight: expected a finite number >= 0, got -1.0"),
                          (["--classifier-hidden", "0"], "--classifier-hidden: expected a positive integer, got 0"),
                          (["--classifier-dropout", "1"], "--classifier-dropout: expected a fraction in [0, 1), got 1.0"),
                          (["--synthetic-loss", "bogus"], "Invalid value for '--synthetic-loss'")):
        res = CliRunner().invoke(train_cli, ["fit", "--store", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "o"), *args])
        assert res.exit_code != 0 and "Traceback" not in res.output and message in res.output, res.output


def test_every_generate_setting_is_an_augment_generate_option():
    from mirage.augment.config import GenerateConfig

    out = CliRunner().invoke(augment_cli, ["generate", "--help"], terminal_width=400).output
    specs = option_specs(GenerateConfig)
    assert {s.name for s in specs} == {f.name for f in dataclasses.fields(GenerateConfig)} - {"num_threads"}
    for spec in specs:
        assert spec.flag in out, spec.flag
    assert "--balanced / --no-balanced" in out and "[default: 4x]" in out and "[default: 4096]" in out


@pytest.mark.parametrize("kwargs, message", [
    ({"n": "abc"}, "--n"), ({"min_mi": "high"}, "--min-mi: expected"), ({"mi_band": "0.9,0.1"}, "--mi-band"),
    ({"shard_size": 0}, "--shard-size: expected a positive integer"), ({"bogus": 1}, "unknown setting"),
])
def test_generate_settings_are_validated_in_one_place(kwargs, message):
    from mirage.augment.config import GenerateConfig
    from mirage.featstore.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        GenerateConfig.from_kwargs(**kwargs)
    assert GenerateConfig.from_kwargs(min_mi="0.5").min_mi == 0.5  # text from the command line becomes a number
