"""A ``train compare`` rerun into an old ``--out``: the folders of methods the new run does not
have are removed, so the folder never holds stale per-method results beside the new
compare.json (which lists only the new methods).

Only what an earlier compare wrote is touched: the methods its compare.json lists, each
``OUT/<method>/`` that holds a metrics.json, and ``OUT/generators/<method>/``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

from mirage.featstore.store.location import Location

log = logging.getLogger(__name__)


def remove_stale_methods(out: str, names: Sequence[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """Remove the folders of methods an earlier compare into ``out`` ran and this one does not; returns them."""
    loc = Location(str(out), storage_options)
    if not loc.exists("compare.json"):
        return []
    try:
        old = json.loads(loc.read_bytes("compare.json"))
    except ValueError:
        return []
    stale = sorted(m for m in (old if isinstance(old, dict) else {}) if m not in set(names)
                   and "/" not in m and m not in ("", ".", ".."))
    removed = []
    for method in stale:
        if loc.exists(f"{method}/metrics.json"):
            loc.rm(method, recursive=True)
            removed.append(method)
        if loc.exists(f"generators/{method}"):
            loc.rm(f"generators/{method}", recursive=True)
    if removed:
        log.warning("train compare: removed the results of methods this run does not have from %s: %s",
                    loc.url, ", ".join(removed))
    return removed
