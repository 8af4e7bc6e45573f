"""The distribution claims one import name: ``mirage`` (featstore/, augment/, train/, cli/ are
installed as mirage.featstore, mirage.augment, mirage.train, mirage.cli)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE = {"featstore", "augment", "train", "cli"}


def _python_files():
    for folder in ("featstore", "augment", "train", "cli", "mirage", "tests", "bench"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_module_imports_the_bare_names():
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in BARE]
    assert not offenders, "import these through mirage.*: " + ", ".join(offenders[:10])


@pytest.mark.parametrize("name", sorted(BARE))
def test_bare_names_are_not_installed(tmp_path, name):
    out = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr


def test_the_public_api_imports_outside_the_repo(tmp_path):
    code = "import mirage; print(mirage.compare.__module__, mirage.fit.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mirage", "fit"]
