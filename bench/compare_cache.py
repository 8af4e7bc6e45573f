"""Fingerprint caches of ``train compare``: the same compare run twice into one --out.

    python bench/compare_cache.py [--methods none,smote,noise,calibrate,cgan,infogan,auto]
                                  [--gen-epochs 3] [--keep DIR] [--json]

Extracts the self-generated demo corpus with the logmel extractor into a temporary folder (or
reuses ``--store``), runs ``train compare`` (LOSO, ``--n 2x``, small generators) into one
``--out``, then runs the identical command again, and prints both wall times and
``second_over_first`` (goal <= 0.1: the second run reuses every generator fit + generation and
every fold result, see train/methods/cache.py) plus the cache counts of the second run, and
checks that both runs wrote the same compare.json bytes. ``--json`` prints
``{"second_over_first": r, ...}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="none,smote,noise,calibrate,cgan,infogan,auto")
    ap.add_argument("--gen-epochs", type=int, default=3, help="generator stage-1 and stage-2 epochs (small: a bench)")
    ap.add_argument("--store", default=None, help="an existing store instead of the demo corpus (logmel)")
    ap.add_argument("--keep", default=None, help="keep the work folder here instead of a temporary one")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from mirage.featstore.extract import extract
    from mirage.train.compare import compare

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_compare_cache_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        store = args.store
        if store is None:
            store = str(work / "demo_logmel.zarr")
            if not Path(store).exists():
                extract("demo", store=store, audio_model="logmel", text_model="none", cache_dir=str(work / "corpus"))
        out = str(work / "cmp")
        shutil.rmtree(out, ignore_errors=True)
        kw = dict(methods=args.methods, n="2x", evaluation="loso", seed=0,
                  generator_options={"epochs": args.gen_epochs, "align_epochs": args.gen_epochs})
        times, results, bodies = [], [], []
        for _ in range(2):
            t0 = time.perf_counter()
            results.append(compare(store, out, **kw))
            times.append(time.perf_counter() - t0)
            bodies.append((Path(out) / "compare.json").read_bytes())
        ratio = times[1] / times[0]
        doc = {"second_over_first": round(ratio, 4), "first_s": round(times[0], 2), "second_s": round(times[1], 2),
               "second_cache": results[1].cache_stats, "same_bytes": bodies[0] == bodies[1], "methods": args.methods,
               "machine": machine()}
        if args.json:
            print(json.dumps(doc, sort_keys=True))
        else:
            print(f"train compare --methods {args.methods} (demo corpus, logmel, LOSO, --n 2x) on {doc['machine']}")
            print(f"  first run   {times[0]:8.1f} s")
            print(f"  second run  {times[1]:8.1f} s   cache {results[1].cache_stats}")
            print(f"  second/first = {ratio:.3f} (goal <= 0.1); compare.json bytes equal: {doc['same_bytes']}")
        return 0 if doc["same_bytes"] else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
