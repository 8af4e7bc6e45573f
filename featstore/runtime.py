"""How a run executes — not what it computes: storage options per URL, the Dask cluster, torch
threads and progress bars (logging is the standard ``logging`` tree under ``mirage``, set up by
the command line's ``-v``). One :class:`Runtime` is built by the command line (or a
notebook) and passed once to a library entry point (``extract``, ``fit_generator``,
``generate``, ``train fit``, ``train compare``); nothing here changes a result, so none of it
enters a fingerprint or a settings file.

Storage options are resolved per URL (:func:`featstore.store.location.options_for`): keys that
are URL prefixes (``"s3://data"``) hold the options of the URLs below them, so a store, shards
and an ``--out`` on different endpoints are served by one Runtime.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from mirage.featstore.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    storage_options: dict[str, Any] | None = None  # fsspec options; URL-prefix keys scope them
    workers: int = 0                # local Dask cluster with N worker processes (0: in-process)
    scheduler: str | None = None    # address or scheduler JSON file of an existing Dask cluster
    client: Any = None              # an open distributed.Client to use as it is (library callers)
    num_threads: int | None = None  # torch threads of in-process work (None: leave torch's own)
    progress: bool = True           # progress bars on long work

    def __post_init__(self) -> None:
        # the one home of these checks, so every entry point refuses the same way
        from mirage.featstore.settings import check_int

        check_int(self.workers, "--workers", minimum=0, what="a number of worker processes >= 0")
        if sum(bool(x) for x in (self.workers, self.scheduler, self.client is not None)) > 1:
            raise ConfigError("expected either --workers (local Dask cluster) or --scheduler (existing cluster), got both")
        check_int(self.num_threads, "--threads", what="a positive number of torch threads", allow_none=True)
        if self.storage_options is not None and not isinstance(self.storage_options, dict):
            raise ConfigError(f"--storage-options: expected a JSON object, got {type(self.storage_options).__name__}")

    @classmethod
    def resolve(cls, runtime: "Runtime | None", *, default_progress: bool = True, **legacy: Any) -> "Runtime":
        """``runtime`` itself, or one built from an entry point's keyword conveniences
        (``storage_options=``, ``workers=``, ``scheduler=``, ``client=``, ``progress=``; an
        unset ``progress`` is ``default_progress``); both at once is refused, so a caller never
        wonders which one won."""
        given = {k: v for k, v in legacy.items() if v is not None and not (k == "workers" and v == 0)}
        if runtime is None:
            built = {k: v for k, v in legacy.items() if v is not None}
            built.setdefault("progress", default_progress)
            return cls(**built)
        if not isinstance(runtime, Runtime):
            raise ConfigError(f"runtime: expected a mirage Runtime, got {type(runtime).__name__}")
        clash = sorted(k for k in given if k != "progress" and getattr(runtime, k) != given[k])
        if clash:
            raise ConfigError(f"expected either runtime= or {', '.join(k + '=' for k in clash)}, got both")
        return runtime

    def options_for(self, url: str) -> dict[str, Any]:
        """The storage options that apply to ``url``."""
        from mirage.featstore.store.location import options_for

        return options_for(str(url), self.storage_options)

    @contextlib.contextmanager
    def dask(self) -> Iterator[Any]:
        """The run's Dask client (an open one as it is; else started here and closed after), or None."""
        if self.client is not None:
            yield self.client
            return
        from mirage.featstore.dask_utils import dask_client

        with dask_client(workers=self.workers, scheduler=self.scheduler) as client:
            yield client

    def threads(self):
        """Torch threads fixed to ``num_threads`` for a block of in-process work (restored after;
        None leaves torch's own count)."""
        from mirage.featstore.threads import fixed_threads

        return fixed_threads(self.num_threads)

    def bar(self, **kwargs: Any):
        """A progress bar (tqdm), silent unless ``progress``."""
        from tqdm.auto import tqdm

        kwargs.setdefault("mininterval", 1.0)
        return tqdm(disable=not self.progress, **kwargs)
