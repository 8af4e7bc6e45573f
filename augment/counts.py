"""Parsing of the user-facing numbers: ``--n 4x`` counts, [0, 1] floats, MI bands, speaker lists.

Shared by the library and the CLI so both reject the same inputs with the same message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mirage.featstore.errors import ConfigError

_MULTIPLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX]\s*$")
_INTEGER = re.compile(r"^\s*\+?(\d+)\s*$")


def parse_count(value: str | int | float, n_real: int | None = None, *, flag: str = "--n") -> int:
    """``"4x"`` -> ``4 * n_real`` (rounded), ``"1000"``/``1000`` -> 1000.

    ``n_real`` may be None only when the value is an absolute count.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{flag}: expected Nx or a positive integer, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"{flag}: expected Nx or a positive integer, got {value!r}")
        return value
    text = str(value)
    m = _MULTIPLE.match(text)
    if m:
        factor = float(m.group(1))
        if factor <= 0 or not math.isfinite(factor):
            raise ConfigError(f"{flag}: expected a positive multiple such as 4x, got {text!r}")
        if n_real is None:
            raise ConfigError(f"{flag}: {text!r} is relative to the real training items, but their number is unknown")
        count = int(round(factor * n_real))
        if count <= 0:
            raise ConfigError(f"{flag}: {text!r} of {n_real} real items is zero items; ask for more")
        return count
    m = _INTEGER.match(text)
    if m and int(m.group(1)) > 0:
        return int(m.group(1))
    raise ConfigError(f"{flag}: expected Nx or a positive integer, got {text!r}")


def check_count_spec(value: str | int) -> str | int:
    """Validate the form of a count without knowing ``n_real`` (CLI-time check): a multiple
    only needs to be positive here; whether it rounds to zero items depends on the store."""
    m = _MULTIPLE.match(str(value)) if not isinstance(value, (bool, int)) else None
    if m:
        factor = float(m.group(1))
        if factor <= 0 or not math.isfinite(factor):
            raise ConfigError(f"--n: expected a positive multiple such as 4x, got {value!r}")
        return value
    parse_count(value)
    return value


def parse_unit_float(value: str | float, *, flag: str) -> float:
    """A float in [0, 1] (e.g. ``--min-mi``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}: expected a number in [0, 1], got {value!r}") from None
    if not (0.0 <= x <= 1.0):
        raise ConfigError(f"{flag}: expected a number in [0, 1], got {value!r}")
    return x


def parse_band(value: str | tuple[float, float] | None, *, flag: str = "--mi-band") -> tuple[float, float]:
    """``"0.6,0.95"`` -> (0.6, 0.95); None -> (0, 1) (keep everything)."""
    if value is None:
        return (0.0, 1.0)
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ConfigError(f"{flag}: expected LO,HI with 0 <= LO < HI <= 1, got {value!r}")
    lo, hi = (parse_unit_float(p, flag=flag) for p in parts)
    if lo >= hi:
        raise ConfigError(f"{flag}: expected LO < HI, got {value!r}")
    return (lo, hi)


def parse_speakers(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"03,08"`` or ``["03", "08"]`` -> ("03", "08"); speaker ids stay strings (leading zeros matter)."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(sorted({p.strip() for p in parts if p.strip()}))
