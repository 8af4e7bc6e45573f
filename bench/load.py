"""Loader throughput: the Dask block loader against two baselines measured in the same run.

    python bench/load.py [--rows 200000] [--dim 768] [--batch-size 1024] [--epochs 2] [--json]

A Zarr feature store of ROWS x DIM float32 rows is written chunk by chunk (StoreWriter)
into a temporary folder and removed at the end. Then, each over ``--epochs`` full epochs:

1. loader     — ``train.loaders.BlockStream``: one Dask task per ~8 MiB chunk-aligned block,
                block order permuted per epoch, prefetch on a background thread, shuffle
                buffer of whole blocks, torch batches out;
2. in-memory  — the same rows already in a NumPy array, iterated as shuffled torch batches
                (``x[perm[i:i+B]]``, what a plain script does once the data fits in RAM);
3. sequential — the same bytes read front to back from one raw file (1 MiB reads, no
                decoding), the disk's streaming rate for this data (page cache warm: the
                files were just written, as the store's were);
4. store_read_rows — featstore's own contiguous ``read_rows`` over the same blocks, one
                thread, no Dask, no shuffle: the decode cost the loader builds on.

The goal (issue 14) is loader >= 0.8 x in-memory.

Then the read overhead of verification (every chunk checked against its crc32c): 4 and 1
again with verification on and off, alternated ``--verify-repeats`` times, best of each;
the goal is at most 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import machine  # noqa: E402


def build_store(url: str, n_rows: int, dim: int, seed: int = 0, chunk_rows: int | None = None) -> tuple[float, int]:
    """Write the bench store unit by unit; returns (seconds, chunk_rows)."""
    import pandas as pd

    from mirage.featstore.store import StoreWriter
    from mirage.featstore.store.base import STATUS_OK

    plan = pd.DataFrame({"utt_id": [f"u{i:08d}" for i in range(n_rows)], "path": "", "speaker": "s", "label": "a",
                         "split": "train", "duration_s": 1.0, "text": ""})
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with StoreWriter(url, plan=plan, arrays={"audio": dim}, metadata={"corpus": "bench"}, chunk_rows=chunk_rows) as w:
        for start, stop in w.pending_units():
            block = rng.standard_normal((stop - start, dim), dtype=np.float32)
            w.write_unit(start, stop, {"audio": block}, np.full(stop - start, STATUS_OK))
        store = w.finalize()
    return time.perf_counter() - t0, store.chunk_rows


def bench_loader(url: str, n_rows: int, batch_size: int, epochs: int) -> tuple[float, int]:
    from mirage.train.loaders import BlockStream, Source

    src = Source(url, ("audio",), np.arange(n_rows), np.zeros(n_rows, np.int64))
    stream = BlockStream([src], batch_size=batch_size, seed=0)
    rows = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        stream.set_epoch(epoch)
        for xb, yb, wb in stream:
            rows += len(xb)
    return time.perf_counter() - t0, rows


def bench_store_read(url: str, n_rows: int, epochs: int) -> tuple[float, int]:
    """featstore's own contiguous reads (read_rows over ~8 MiB chunk-aligned blocks), one thread, no shuffle."""
    from mirage.featstore.store import open_store

    store = open_store(url)
    step = store.chunk_rows * max(1, (8 << 20) // (store.chunk_rows * 4 * store.dim("audio")))
    rows = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, n_rows, step):
            rows += len(store.read_rows("audio", start, min(n_rows, start + step)))
    return time.perf_counter() - t0, rows


def verify_overhead(url: str, n_rows: int, batch_size: int, epochs: int, repeats: int) -> dict:
    """What checking every chunk against its checksum costs: the same read path (featstore's
    read_rows, and the loader) with verification on and off (base._VERIFY_READS, a switch
    only this bench uses), alternated ``repeats`` times, best time of each kept."""
    from mirage.featstore.store import base
    from mirage.train.loaders import clear_store_cache

    out = {}
    for name, fn in (("store_read_rows", lambda: bench_store_read(url, n_rows, epochs)),
                     ("loader", lambda: bench_loader(url, n_rows, batch_size, epochs))):
        best = {True: float("inf"), False: float("inf")}
        cpu = {True: float("inf"), False: float("inf")}
        for _ in range(repeats):
            for verify in (False, True):
                base._VERIFY_READS = verify
                clear_store_cache()
                c0 = time.process_time()
                try:
                    secs, rows = fn()
                finally:
                    base._VERIFY_READS = True
                assert rows == n_rows * epochs, (name, rows)
                best[verify] = min(best[verify], secs)
                cpu[verify] = min(cpu[verify], time.process_time() - c0)
        # CPU seconds of this process too: on a shared machine wall time mostly measures the neighbours
        out[name] = {"verified_s": round(best[True], 3), "unverified_s": round(best[False], 3),
                     "overhead": round(best[True] / best[False] - 1, 4),
                     "verified_cpu_s": round(cpu[True], 3), "unverified_cpu_s": round(cpu[False], 3),
                     "overhead_cpu": round(cpu[True] / cpu[False] - 1, 4)}
    return out


def bench_memory(x: np.ndarray, batch_size: int, epochs: int) -> tuple[float, int]:
    import torch

    rows = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = np.random.default_rng(epoch).permutation(len(x))
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[perm[i: i + batch_size]])
            rows += len(xb)
    return time.perf_counter() - t0, rows


def bench_sequential(path: str, row_bytes: int, epochs: int, read_bytes: int = 1 << 20) -> tuple[float, int]:
    buf = bytearray(read_bytes)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        with open(path, "rb", buffering=0) as fh:
            while True:
                n = fh.readinto(view)
                if not n:
                    break
                total += n
    return time.perf_counter() - t0, total // row_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--chunk-rows", type=int, default=None,
                    help="Rows per store chunk (default: what featstore extract picks, ~1 MiB).")
    ap.add_argument("--tmp", default=None, help="Folder for the temporary store (default: the system temp dir).")
    ap.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")
    ap.add_argument("--verify-repeats", type=int, default=3,
                    help="Rounds of verified vs unverified reads for the verification overhead (0: skip).")
    args = ap.parse_args()

    from mirage.train.loaders import clear_store_cache, load_rows, Source

    tmp = tempfile.mkdtemp(prefix="mirage-bench-load-", dir=args.tmp)
    try:
        url = os.path.join(tmp, "bench.zarr")
        build_s, chunk_rows = build_store(url, args.rows, args.dim, chunk_rows=args.chunk_rows)
        x = load_rows(Source(url, ("audio",), np.arange(args.rows), np.zeros(args.rows, np.int64)))
        raw = os.path.join(tmp, "bench.f32")
        x.tofile(raw)
        clear_store_cache()
        import dask  # noqa: F401  (imports are not part of any timing)
        import dask.threaded  # noqa: F401
        import torch  # noqa: F401

        results = {}
        for name, fn in (("loader", lambda: bench_loader(url, args.rows, args.batch_size, args.epochs)),
                         ("in_memory", lambda: bench_memory(x, args.batch_size, args.epochs)),
                         ("store_read_rows", lambda: bench_store_read(url, args.rows, args.epochs)),
                         ("sequential_read", lambda: bench_sequential(raw, 4 * args.dim, args.epochs))):
            secs, rows = fn()
            assert rows == args.rows * args.epochs, (name, rows)
            results[name] = {"seconds": round(secs, 3), "rows_per_s": round(rows / secs)}
        ratio = results["loader"]["rows_per_s"] / results["in_memory"]["rows_per_s"]
        out = {
            "machine": machine(), "rows": args.rows, "dim": args.dim, "batch_size": args.batch_size,
            "epochs": args.epochs, "store_gib": round(args.rows * args.dim * 4 / 2**30, 3), "chunk_rows": chunk_rows,
            "build_s": round(build_s, 1), **results, "loader_vs_in_memory": round(ratio, 3),
            "loader_over_inram": round(ratio, 3),
            "loader_vs_sequential_read": round(results["loader"]["rows_per_s"] / results["sequential_read"]["rows_per_s"], 3),
            "goal_met": ratio >= 0.8,
        }
        if args.verify_repeats > 0:
            over = verify_overhead(url, args.rows, args.batch_size, args.epochs, args.verify_repeats)
            out["verify_overhead"] = over
            out["verify_overhead_goal_met"] = max(v["overhead"] for v in over.values()) <= 0.05
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"bench/load.py — {out['machine']}")
    print(f"store: {args.rows} x {args.dim} float32 ({out['store_gib']} GiB, chunks of {chunk_rows} rows), "
          f"written in {out['build_s']} s; batch {args.batch_size}, {args.epochs} epochs")
    for name in ("loader", "in_memory", "sequential_read", "store_read_rows"):
        r = out[name]
        print(f"  {name:16s} {r['rows_per_s']:>12,} rows/s  ({r['seconds']:.2f} s)")
    print(f"  loader / in-memory       = {out['loader_vs_in_memory']:.2f}  (goal >= 0.8: {'met' if out['goal_met'] else 'NOT met'})")
    print(f"  loader / sequential read = {out['loader_vs_sequential_read']:.2f}")
    for name, v in out.get("verify_overhead", {}).items():
        print(f"  checksum verification, {name:15s}: {v['verified_s']:.2f} s verified vs {v['unverified_s']:.2f} s "
              f"unverified = {100 * v['overhead']:+.1f}% wall, {100 * v['overhead_cpu']:+.1f}% CPU (goal <= 5%)")


if __name__ == "__main__":
    main()
