"""Where mirage keeps what it derives once per machine (the demo corpus, converted models)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$MIRAGE_CACHE`` or ``~/.cache/mirage`` (not created here)."""
    return Path(os.environ.get("MIRAGE_CACHE") or Path.home() / ".cache" / "mirage").expanduser()
