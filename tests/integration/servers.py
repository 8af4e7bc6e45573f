"""Loopback servers for the integration tests: a moto S3 server and a Dask cluster.

Everything binds to 127.0.0.1 only, on ports the OS picks. Subprocesses start in their own
process group (``start_new_session``) and are killed as a group at teardown; the scheduler
also has an idle timeout and the workers a death timeout, so a crashed test run cannot
leave them behind for long.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def exe(name: str) -> str:
    return str(BIN / name)


# -- S3 --------------------------------------------------------------------------------------
class S3Server:
    """moto's S3-compatible server in a thread of this process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        assert host == HOST, host
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()


KEY, SECRET = "mirage-test", "mirage-test-secret"


def s3_env(endpoint: str) -> dict[str, str]:
    """Fake credentials and the endpoint, as the environment of every process that talks to it."""
    return {
        "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class Bucket:
    """One bucket on the test server; ``url("x.zarr")`` -> ``s3://bucket/x.zarr``."""

    name: str
    endpoint: str
    storage_options: dict = field(default_factory=dict)

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    @property
    def options_json(self) -> str:
        return json.dumps(self.storage_options)

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, key=KEY, secret=SECRET, use_listings_cache=False,
                                 skip_instance_cache=True)

    def keys(self, prefix: str = "") -> list[str]:
        return [k.split("/", 1)[1] for k in self.fs().find(f"{self.name}/{prefix}")]


def new_bucket(endpoint: str) -> Bucket:
    bucket = Bucket(f"mirage-{uuid.uuid4().hex[:12]}", endpoint,
                    {"client_kwargs": {"endpoint_url": endpoint}})
    bucket.fs().mkdir(bucket.name)
    return bucket


# -- Dask ------------------------------------------------------------------------------------
def _wait(predicate, timeout_s: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: process {p.args[:3]} exited with {p.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class DaskCluster:
    """``dask scheduler`` + ``dask worker`` processes on loopback (1 thread, 1 process each; no
    nanny, which would only add a process per worker and restart killed ones)."""

    def __init__(self, workdir: Path, env: dict[str, str], n_workers: int = 2) -> None:
        self.workdir = workdir
        self.env = env
        self.workers: list[subprocess.Popen] = []
        self._started = 0
        self._logs: list = []
        self.scheduler_file = workdir / "scheduler.json"
        self.scheduler = self._spawn("scheduler", [exe("dask"), "scheduler", "--host", HOST, "--port", "0",
                                                   "--no-dashboard", "--scheduler-file", str(self.scheduler_file),
                                                   "--idle-timeout", "300"])
        try:
            for _ in range(n_workers):  # they wait for the scheduler file, so all start at once
                self.add_worker()
            _wait(self._scheduler_ready, 60, "dask scheduler", [self.scheduler])
            self.address = json.loads(self.scheduler_file.read_text())["address"]
            assert self.address.startswith(f"tcp://{HOST}:"), self.address
            self.wait_for_workers(n_workers)
        except BaseException:
            self.stop()
            raise

    def _scheduler_ready(self) -> bool:
        try:
            return "address" in json.loads(self.scheduler_file.read_text())
        except (FileNotFoundError, ValueError):
            return False

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        logf = open(self.workdir / f"{name}.log", "ab")
        self._logs.append(logf)
        return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def add_worker(self) -> subprocess.Popen:
        i = self._started
        self._started += 1
        local = self.workdir / f"worker{i}"
        local.mkdir(exist_ok=True)
        proc = self._spawn(f"worker{i}", [exe("dask"), "worker", "--scheduler-file", str(self.scheduler_file),
                                           "--host", HOST, "--nthreads", "1", "--nworkers", "1", "--no-nanny",
                                           "--no-dashboard", "--name", f"w{i}",
                                           "--local-directory", str(local), "--death-timeout", "30"])
        self.workers.append(proc)
        return proc

    def client(self):
        from distributed import Client

        return Client(self.address, timeout="30s")

    def n_workers(self) -> int:
        with self.client() as c:
            return len(c.scheduler_info()["workers"])

    def wait_for_workers(self, n: int, timeout_s: float = 120) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=timeout_s)

    def ensure_workers(self, n: int) -> None:
        """Start workers until ``n`` are connected (after a test killed some)."""
        self.workers = [p for p in self.workers if p.poll() is None]
        missing = n - self.n_workers()
        for _ in range(max(0, missing)):
            self.add_worker()
        if missing > 0:
            self.wait_for_workers(n)

    def worker_group_of(self, pid: int) -> subprocess.Popen:
        """The ``dask worker`` process whose group holds worker process ``pid``."""
        pgid = os.getpgid(pid)
        for p in self.workers:
            if p.pid == pgid:
                return p
        raise LookupError(f"no worker process group {pgid}")

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            kill_group(p, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            kill_group(p, signal.SIGKILL)  # the whole group: the process and anything it forked
            p.wait()
        for f in self._logs:
            f.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.workdir.glob("*.log")))
