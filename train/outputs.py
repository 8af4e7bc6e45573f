"""train's output files (metrics.json, config.json, compare.md, PNGs) written through featstore's Location.

So ``--out`` may be a local folder or an fsspec URL (``s3://bucket/run``): every file is
written whole and atomically (a single PUT on an object store, write-then-rename on disk),
with the storage options that apply to its URL (see
:func:`mirage.featstore.store.location.options_for`: one dict may carry per-URL entries).
JSON is written with sorted keys and a trailing newline, PNGs without a ``Software`` tag,
so the same run gives the same bytes wherever it writes.
"""

from __future__ import annotations

import io
import json
from typing import Any

from mirage.featstore.store.location import Location, join, storage_errors


def out_path(out: str, *parts: str) -> str:
    """``out/part/...`` for a local folder or a URL (no ``os.path``: it would mangle ``s3://``)."""
    return join(str(out), *parts)


def _split(url: str) -> tuple[str, str]:
    url = str(url).rstrip("/")
    parent, sep, name = url.rpartition("/")
    if not sep:
        return ".", url
    if parent.endswith(":/"):  # "s3://name": the name is a bucket, not a file
        raise ValueError(f"{url}: expected a file path below a folder or bucket")
    return parent or "/", name


def write_bytes(url: str, data: bytes, storage_options: dict[str, Any] | None = None) -> str:
    """Write ``data`` to the file ``url`` (its folder is made as needed); returns ``url``."""
    parent, name = _split(url)
    with storage_errors(url, storage_options):
        Location(parent, storage_options).write_bytes(name, data)
    return str(url)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


def write_json(url: str, obj: Any, storage_options: dict[str, Any] | None = None) -> str:
    return write_bytes(url, json_bytes(obj), storage_options)


def write_text(url: str, text: str, storage_options: dict[str, Any] | None = None) -> str:
    return write_bytes(url, text.encode("utf-8"), storage_options)


def read_json(url: str, storage_options: dict[str, Any] | None = None) -> Any:
    parent, name = _split(url)
    with storage_errors(url, storage_options):
        return json.loads(Location(parent, storage_options).read_bytes(name))


def save_figure(fig, url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Render a matplotlib figure as PNG into ``url`` and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return write_bytes(url, buf.getvalue(), storage_options)
