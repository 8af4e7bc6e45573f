"""Fixtures: a moto S3 server, a bucket per test, a Dask cluster of two workers.

Server and cluster live for the tests of this package and are stopped after them.

Credentials and the endpoint reach this process through the environment (monkeypatched
per test) and through ``--storage-options``; subprocesses and Dask workers get them in
their environment at start.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.servers import REPO, DaskCluster, S3Server, new_bucket, s3_env


@pytest.fixture(scope="package")
def s3_server():
    pytest.importorskip("moto.server", reason="moto[server] is a dev dependency: pip install -e '.[dev]'")
    pytest.importorskip("s3fs", reason="s3fs is a dev dependency: pip install -e '.[dev]'")
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh bucket; this process's environment holds the credentials and the endpoint."""
    for key, value in s3_env(s3_server.endpoint).items():
        monkeypatch.setenv(key, value)
    return new_bucket(s3_server.endpoint)


def _worker_env(tmp_path_factory, endpoint: str | None) -> dict[str, str]:
    cache = tmp_path_factory.getbasetemp() / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "MIRAGE_CACHE": str(cache / "mirage"), "HF_HOME": str(cache / "hf"), "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
        "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning",
    })
    if endpoint:
        env.update(s3_env(endpoint))
    return env


@pytest.fixture(scope="package")
def dask_cluster(tmp_path_factory, s3_server):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; they can reach the S3 server."""
    pytest.importorskip("distributed")
    workdir = tmp_path_factory.mktemp("dask")
    cluster = DaskCluster(workdir, _worker_env(tmp_path_factory, s3_server.endpoint), n_workers=2)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(dask_cluster):
    """The session cluster with its two workers (restarted if an earlier test killed one)."""
    dask_cluster.ensure_workers(2)
    return dask_cluster
