"""Helpers every settings dataclass shares (the one home of "unknown setting" checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mirage.featstore.errors import ConfigError


def check_known(cls, kwargs: dict[str, Any], what: str) -> None:
    """Raise ConfigError naming any key of ``kwargs`` that is not a field of the dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {unknown}; expected some of {sorted(names)}")
