"""`--scheduler`: extraction on an existing Dask cluster (a scheduler and two worker processes)."""

from __future__ import annotations

from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore.dask_utils import ClusterError
from mirage.featstore.extract import extract
from mirage.featstore.store import open_store, verify
from tests.featstore.test_extract import write_corpus
from tests.integration import probes


def test_scheduler_run_to_s3_equals_one_process_and_loads_each_model_once_per_worker(tmp_path, cluster, s3):
    """The docker-compose set-up in small: workers embed, this process writes the store to S3."""
    from tests.fixtures.models import build_bert, build_wav2vec2

    audio, text = build_wav2vec2(tmp_path / "w2v"), build_bert(tmp_path / "bert")
    table = write_corpus(tmp_path / "c", n=40)
    one = extract("csv", root=str(table), store=str(tmp_path / "one.zarr"), audio_model=str(audio),
                  text_model=str(text), chunk_rows=4, progress=False).store
    url = s3.url("dask.zarr")
    with cluster.client() as client:
        client.run(probes.count_loads)
        out = CliRunner().invoke(featstore_cli, [
            "extract", "--corpus", "csv", "--root", str(table), "--store", url, "--audio-model", str(audio),
            "--text-model", str(text), "--chunk-rows", "4", "--quiet", "--scheduler", cluster.address,
            "--storage-options", s3.options_json])
        assert out.exit_code == 0, out.output + cluster.logs()
        assert "10/10 units" in out.output
        loads = client.run(probes.load_counts)
    # 10 tasks over 2 workers: each worker that ran any loaded each model exactly once.
    assert loads and all(c == {"w2v": 1, "bert": 1} for c in loads.values() if c), loads
    assert any(loads.values()), loads
    with open_store(url, storage_options=s3.storage_options) as two:
        assert two.metadata["content_hash"] == one.metadata["content_hash"]
    assert verify(url, storage_options=s3.storage_options)["problems"] == []


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("MIRAGE_DASK_CONNECT_S", "2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    table = write_corpus(tmp_path / "c", n=4)
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store",
                                             str(tmp_path / "s.zarr"), "--audio-model", "logmel", "--text-model", "none", "--quiet",
                                             "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1 and "cannot reach a Dask scheduler" in out.output


def test_cluster_failures_become_one_line_cluster_errors():
    from distributed.scheduler import KilledWorker

    from mirage.featstore.dask_utils import cluster_failure

    worker = type("WorkerState", (), {"address": "tcp://127.0.0.1:1"})()
    err = cluster_failure(KilledWorker("embed-x-16", worker, 3), "unit embed-x-16")
    assert isinstance(err, ClusterError) and "\n" not in str(err) and "rerun the same command" in str(err)
    assert cluster_failure(ValueError("a bug in the task"), "unit x") is None  # the task's own errors pass through
