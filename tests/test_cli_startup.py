"""Building the command line imports no torch: --help and bad-flag errors answer at once."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["mirage.cli.featstore", "mirage.cli.augment", "mirage.cli.train"])
def test_cli_modules_do_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
