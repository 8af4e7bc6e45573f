"""Each console script reports the installed distribution's version."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from click.testing import CliRunner

from mirage.cli.augment import main as augment_cli
from mirage.cli.featstore import main as featstore_cli
from mirage.cli.train import main as train_cli


@pytest.mark.parametrize("name,cli", [("featstore", featstore_cli), ("augment", augment_cli), ("train", train_cli)])
def test_version_flag(name, cli):
    out = CliRunner().invoke(cli, ["--version"])
    assert out.exit_code == 0
    assert out.output.strip() == f"{name} (mirage-ser) {version('mirage-ser')}"
