"""Where a store lives: local paths and fsspec URLs, atomic small-file writes, the writer lock.

Object stores (``s3://``, ``gs://``, ``az://`` ...) take credentials and endpoint from the
usual environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` ...) or from ``storage_options`` (``--storage-options`` on the CLI).
Their errors (unreachable endpoint, missing bucket, no or wrong credentials) become an
:class:`ObjectStoreError` with a one-line, actionable message (see :func:`storage_errors`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Iterator

from mirage.featstore.errors import ConfigError, MirageError, ObjectStoreError, StoreLockedError  # noqa: F401  (ObjectStoreError re-exported)

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
#: Protocols whose single PUT is atomic and that have buckets rather than folders.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
#: A lock on an object store whose holder has not written for this long (seconds) is taken
#: over; ``MIRAGE_LOCK_STALE_S`` overrides it.
LOCK_STALE_S = 900.0
LOCK_HEARTBEAT_S = 60.0


def is_remote(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def protocol(url: str) -> str:
    return str(url).split("://", 1)[0].lower() if is_remote(url) else "file"


def is_object_store(url: str) -> bool:
    return protocol(url) in OBJECT_STORES


def normalize(url: str) -> str:
    """Absolute local path, or the URL untouched; never a trailing slash."""
    url = str(url)
    if is_remote(url):
        return url.rstrip("/")
    return os.path.abspath(os.path.expanduser(url.removeprefix("file://"))).rstrip("/") or "/"


def check_out_dir(url: str, *, flag: str = "--out") -> None:
    """Raise :class:`ConfigError` when a local output folder is a regular file or lies below one."""
    if is_remote(url):
        return
    path = normalize(url)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: expected a folder (or a new path), got a regular file; choose another {flag}")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if parent and os.path.exists(parent) and not os.path.isdir(parent):
        raise ConfigError(f"{flag} {path}: expected a folder (or a new path), got a path below the regular file "
                          f"{parent}; choose another {flag}")


def options_for(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The storage options that apply to ``url``.

    Keys holding ``://`` are URL prefixes (``{"s3://data": {...}, "s3://results": {...}}``):
    the entry of the longest prefix containing ``url`` is merged over the plain keys, which
    apply to every URL. So one dict can serve a store, shards and an ``--out`` on different
    endpoints or with different credentials; a dict without URL keys serves every URL as before."""
    opts = dict(storage_options or {})
    per_url = {str(k).rstrip("/"): opts.pop(k) for k in list(opts) if "://" in str(k)}
    if per_url:
        target = normalize(url)
        hits = [k for k in per_url if target == k or target.startswith(k + "/")]
        if hits:
            opts.update(per_url[max(hits, key=len)] or {})
    return opts


def fs_options(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The fsspec options used for ``url`` (see :func:`options_for`). Object stores get no
    listings cache by default: several processes (and zarr's own filesystem instance) write
    the same prefixes, and a cached listing would hide their objects."""
    opts = options_for(url, storage_options)
    if is_object_store(url):
        opts.setdefault("use_listings_cache", False)
    return opts


def filesystem(url: str, storage_options: dict[str, Any] | None = None):
    """``(fs, path)`` for a URL or local path."""
    from fsspec.core import url_to_fs

    return url_to_fs(url, **fs_options(url, storage_options))


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def endpoint_of(storage_options: dict[str, Any] | None, url: str | None = None) -> str:
    """The object-store endpoint a client would use (for ``url``), for messages."""
    so = options_for(url, storage_options) if url else (storage_options or {})
    ep = so.get("endpoint_url") or (so.get("client_kwargs") or {}).get("endpoint_url")
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL"):
        ep = ep or os.environ.get(var)
    return ep or "the provider's default endpoint"


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ClientConnectorError",
                "ServerDisconnectedError", "ProxyConnectionError", "ClientOSError", "ReadTimeoutError",
                "ConnectionRefusedError", "ConnectionResetError"}
_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError"}


def translate_error(exc: BaseException, url: str, storage_options: dict[str, Any] | None = None) -> MirageError | None:
    """An :class:`ObjectStoreError` for an object-store failure on ``url``, or None to re-raise as is."""
    if isinstance(exc, MirageError) or not is_remote(url):
        return None
    names = _names(exc)
    endpoint = endpoint_of(storage_options, url)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if names & _UNREACHABLE:
        return ObjectStoreError(
            f"{url}: cannot reach the object store at {endpoint} ({detail}); expected a running S3-compatible "
            "server — check AWS_ENDPOINT_URL or --storage-options '{\"client_kwargs\": {\"endpoint_url\": \"http://HOST:PORT\"}}'")
    if names & _NO_CREDENTIALS:
        return ObjectStoreError(
            f"{url}: no credentials for {endpoint}; expected AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
            "environment (or --storage-options '{\"key\": ..., \"secret\": ...}', or '{\"anon\": true}' for a public bucket)")
    if isinstance(exc, FileNotFoundError) and "bucket" in detail.lower():
        return missing_bucket(url, storage_options)
    if isinstance(exc, PermissionError) or names & {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}:
        return ObjectStoreError(
            f"{url}: access denied by {endpoint} ({detail}); expected credentials allowed to read and write there — "
            "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --storage-options key/secret")
    if isinstance(exc, FileNotFoundError):
        return None  # callers say what was expected at that path
    if isinstance(exc, OSError) or "BotoCoreError" in names or "ClientError" in names:
        return ObjectStoreError(f"{url}: the object store at {endpoint} failed ({type(exc).__name__}: {detail}); "
                                "rerun the same command (finished work is kept), or check the server")
    return None


def missing_bucket(url: str, storage_options: dict[str, Any] | None = None) -> ObjectStoreError:
    bucket = str(url).split("://", 1)[-1].split("/", 1)[0]
    return ObjectStoreError(
        f"{url}: expected an existing bucket '{bucket}' at {endpoint_of(storage_options, url)}, found none; create it "
        f"first (e.g. `aws s3 mb {protocol(url)}://{bucket}` or the MinIO console) or fix the URL")


@contextlib.contextmanager
def storage_errors(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[None]:
    """Turn object-store failures inside the block into :class:`ObjectStoreError`."""
    try:
        yield
    except Exception as exc:
        err = translate_error(exc, str(url), storage_options)
        if err is None:
            raise
        raise err from exc


_checked_buckets: set[tuple[str, str, str]] = set()


class Location:
    """A folder (local or fsspec) with atomic small-file helpers."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = normalize(url)
        self.storage_options = dict(storage_options or {})
        self.fs, self.path = filesystem(self.url, self.storage_options)
        self.object_store = is_object_store(self.url)

    def child(self, name: str) -> str:
        return join(self.path, name)

    def check_bucket(self) -> None:
        """Raise :class:`ObjectStoreError` when the bucket is missing or the store unreachable.

        Done once per (bucket, endpoint) and process; a no-op for local paths."""
        if not self.object_store:
            return
        bucket = self.path.split("/", 1)[0]
        key = (protocol(self.url), bucket, json.dumps(self.storage_options, sort_keys=True, default=str))
        if key in _checked_buckets:
            return
        with storage_errors(self.url, self.storage_options):
            try:
                self.fs.info(bucket)
            except FileNotFoundError:
                raise missing_bucket(self.url, self.storage_options) from None
            except PermissionError:
                log.debug("no permission to check bucket %s; going on", bucket)
        _checked_buckets.add(key)

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.child(name) if name else self.path)

    def read_bytes(self, name: str) -> bytes:
        if self.object_store:
            return self.fs.cat_file(self.child(name))  # one GET
        with self.fs.open(self.child(name), "rb") as fh:
            return fh.read()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Readers never see a half-written file: an object-store PUT is atomic; elsewhere
        write then rename."""
        final = self.child(name)
        if self.object_store:  # no makedirs: on S3 it would create a missing bucket
            self.fs.pipe_file(final, data)
            return
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(self.fs._parent(final), exist_ok=True)
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        if not is_remote(self.url):
            os.replace(tmp, final)
        else:
            self.fs.mv(tmp, final)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if it does not exist; False if it does. Exact on local disk
        and on S3 (conditional PUT); elsewhere a write-then-read-back check."""
        final = self.child(name)
        if not is_remote(self.url):
            os.makedirs(self.path, exist_ok=True)
            try:
                fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        if protocol(self.url) in ("s3", "s3a"):
            try:
                self.fs.pipe_file(final, data, IfNoneMatch="*")
                return True
            except FileExistsError:
                return False
            except (OSError, ValueError, TypeError) as exc:  # a server without conditional writes
                if isinstance(exc, FileNotFoundError):
                    raise
                log.debug("conditional PUT not supported (%s); using write + read-back", exc)
        if self.exists(name):
            return False
        self.write_bytes(name, data)
        return self.read_bytes(name) == data

    def rm(self, name: str = "", recursive: bool = False) -> None:
        target = self.child(name) if name else self.path
        if self.fs.exists(target):
            self.fs.rm(target, recursive=recursive)

    def listdir(self, name: str) -> list[str]:
        target = self.child(name)
        if not self.fs.exists(target):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(target, detail=False))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WriterLock:
    """One writer per store. A lock left by a dead process on this host is taken over
    (that is how a rerun after SIGKILL resumes); a live one refuses. On an object store the
    holder rewrites the lock every ``LOCK_HEARTBEAT_S`` seconds from a background thread,
    and a lock without a heartbeat for ``MIRAGE_LOCK_STALE_S`` (default 900 s) is taken over:
    that is how a rerun resumes after a crash on another machine or container."""

    def __init__(self, loc: Location, what: str):
        self.loc = loc
        self.what = what
        self.held = False
        self.token = {"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex, "time": time.time()}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.loc.read_bytes(LOCK_NAME))
        except (FileNotFoundError, ValueError):
            return None

    def _is_dead(self, holder: dict) -> bool:
        if holder.get("host") == self.token["host"] and not _pid_alive(int(holder.get("pid", -1))):
            return True
        age = time.time() - float(holder.get("time", time.time()))
        return is_remote(self.loc.url) and age > float(os.environ.get("MIRAGE_LOCK_STALE_S", LOCK_STALE_S))

    def acquire(self) -> None:
        holder = self._holder()
        if holder is not None:
            if not self._is_dead(holder):
                raise StoreLockedError(
                    f"{self.what} is being written by process {holder.get('pid')} on {holder.get('host')}; "
                    f"expected no other writer — wait for it to finish (or delete {self.loc.child(LOCK_NAME)} if that process is gone)"
                )
            log.info("taking over the lock of dead process %s on %s (%s)", holder.get("pid"), holder.get("host"), self.what)
            self.loc.rm(LOCK_NAME)
        self.token["time"] = time.time()
        if not self.loc.create_exclusive(LOCK_NAME, json.dumps(self.token).encode()):
            raise StoreLockedError(f"{self.what} is being written by another process; expected no other writer")
        self.held = True
        if is_remote(self.loc.url):
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name="mirage-lock-heartbeat", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT_S):
            try:
                self.token["time"] = time.time()
                self.loc.write_bytes(LOCK_NAME, json.dumps(self.token).encode())
            except Exception as exc:  # a missed beat is not an error; a long outage shows up in the writes
                log.debug("lock heartbeat for %s failed: %s", self.what, exc)

    def release(self) -> None:
        if self._beat is not None:
            self._stop.set()
            self._beat.join(timeout=10)
            self._beat = None
        if self.held:
            try:
                holder = self._holder()
                if holder is not None and holder.get("id") == self.token["id"]:
                    self.loc.rm(LOCK_NAME)
            except Exception as exc:  # never hide the error that made us stop
                if not is_remote(self.loc.url):
                    raise
                log.warning("could not remove the lock of %s (%s); delete %s or let it go stale", self.what, exc,
                            self.loc.child(LOCK_NAME))
        self.held = False

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
