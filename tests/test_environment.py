"""The installed environment itself: one clear failure when the ABI-coupled pair breaks.

torchaudio's compiled extension only loads beside the exact torch it was built for; a
mismatched pair (e.g. torchaudio 2.11.1 beside torch 2.11.0) otherwise shows up as dozens
of unrelated-looking failures wherever audio is resampled.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_torch_and_torchaudio_are_a_working_pair():
    import torch

    try:
        import torchaudio
        from torchaudio import _extension
    except (ImportError, OSError) as exc:  # pragma: no cover - only on a broken install
        pytest.fail(f"torchaudio's compiled extension does not load beside torch {torch.__version__}: {exc}. "
                    f"Reinstall the pinned pair with `make clean test` (pyproject.toml pins both exactly).")
    assert _extension._IS_TORCHAUDIO_EXT_AVAILABLE, "torchaudio was installed without its compiled extension"
    assert version("torch").split("+")[0] == version("torchaudio").split("+")[0], (
        f"expected torch and torchaudio of one release, got torch {version('torch')}, torchaudio {version('torchaudio')}")
    wave = torch.sin(torch.arange(22050, dtype=torch.float32) * 2 * torch.pi * 440 / 22050)
    out = torchaudio.transforms.Resample(22050, 16000)(wave)
    assert out.shape == (16000,) and torch.isfinite(out).all()


def test_pins_are_exact_and_the_lock_agrees_with_them():
    pyproject = (ROOT / "pyproject.toml").read_text()
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    for name in ("torch", "torchaudio"):
        pin = re.search(rf'"{name}==([0-9][^"*]*)"', pyproject)
        assert pin, f"pyproject.toml must pin {name} with ==X.Y.Z (no wildcard)"
        locked = re.search(rf"^{name}==(\S+)$", lock, flags=re.M)
        assert locked and locked.group(1).split("+")[0] == pin.group(1), f"requirements/lock.txt disagrees on {name}"
        assert version(name).split("+")[0] == pin.group(1), f"installed {name} {version(name)} is not the pinned {pin.group(1)}"
