"""Where a store lives: local paths and fsspec URLs, atomic small-file writes, the writer lock."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from typing import Any

from featstore.errors import StoreLockedError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def is_remote(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def normalize(url: str) -> str:
    """Absolute local path, or the URL untouched; never a trailing slash."""
    url = str(url)
    if is_remote(url):
        return url.rstrip("/")
    return os.path.abspath(os.path.expanduser(url.removeprefix("file://"))).rstrip("/") or "/"


def filesystem(url: str, storage_options: dict[str, Any] | None = None):
    """``(fs, path)`` for a URL or local path."""
    from fsspec.core import url_to_fs

    return url_to_fs(url, **(storage_options or {}))


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


class Location:
    """A folder (local or fsspec) with atomic small-file helpers."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = normalize(url)
        self.storage_options = dict(storage_options or {})
        self.fs, self.path = filesystem(self.url, self.storage_options)

    def child(self, name: str) -> str:
        return join(self.path, name)

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.child(name) if name else self.path)

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open(self.child(name), "rb") as fh:
            return fh.read()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write then rename, so readers never see a half-written file."""
        final = self.child(name)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(self.fs._parent(final), exist_ok=True)
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        if not is_remote(self.url):
            os.replace(tmp, final)
        else:
            self.fs.mv(tmp, final)

    def rm(self, name: str = "", recursive: bool = False) -> None:
        target = self.child(name) if name else self.path
        if self.fs.exists(target):
            self.fs.rm(target, recursive=recursive)

    def listdir(self, name: str) -> list[str]:
        target = self.child(name)
        if not self.fs.exists(target):
            return []
        return sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(target, detail=False))


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
    (that is how a rerun after SIGKILL resumes); a live one refuses."""

    def __init__(self, loc: Location, what: str):
        self.loc = loc
        self.what = what
        self.held = False
        self.token = {"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex}

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.loc.read_bytes(LOCK_NAME))
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> None:
        holder = self._holder()
        if holder is not None:
            same_host = holder.get("host") == self.token["host"]
            if same_host and not _pid_alive(int(holder.get("pid", -1))):
                log.info("taking over the lock of dead process %s on %s", holder.get("pid"), self.what)
            else:
                raise StoreLockedError(
                    f"{self.what} is being written by process {holder.get('pid')} on {holder.get('host')}; "
                    f"expected no other writer — wait for it to finish (or delete {self.loc.child(LOCK_NAME)} if that process is gone)"
                )
        payload = json.dumps(self.token).encode()
        if not is_remote(self.loc.url):
            os.makedirs(self.loc.path, exist_ok=True)
            lock_path = self.loc.child(LOCK_NAME)
            if holder is not None:
                os.unlink(lock_path)
            try:
                fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:  # lost a race with another writer
                raise StoreLockedError(f"{self.what} is being written by another process; expected no other writer") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
        else:  # object stores have no O_EXCL: write, then read back to detect a race
            self.loc.write_bytes(LOCK_NAME, payload)
            if self._holder() != self.token:
                raise StoreLockedError(f"{self.what} is being written by another process; expected no other writer")
        self.held = True

    def release(self) -> None:
        if self.held and self._holder() == self.token:
            self.loc.rm(LOCK_NAME)
        self.held = False

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
