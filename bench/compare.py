"""`train compare` wall time at the issue-14 configuration, against its generator-compute floor.

    python bench/compare.py [--speakers 24] [--per-class 15] [--workers 2] [--store S] [--json]

1. The corpus: the self-generated demo corpus with 24 speakers x 4 emotions x 15 utterances
   (1440 items: the size and fold count of the goal's corpus, which does not ship here),
   extracted with ``logmel`` into a cached store (``--store`` reuses one; ``--cache`` keeps it).
2. `train compare --methods none,smote,mixup,noise,cgan,infogan --eval loso --n 4x --min-mi 0.6
   --workers N --cache off`: wall time, and the CPU seconds of this process and its workers.
3. The floor, timed in the same run: one InfoGAN fit + generation on the first fold's training
   rows, in this process with one thread (what each generator job of the compare does), times
   the number of generator jobs, divided by the workers. No schedule of those jobs on N cores can
   finish sooner without changing what is computed (the fits are byte-reproducible per seed).

``compare_over_floor`` = compare wall / floor; ``compare_wall_min`` is the figure the goal
(<= 1 min for this configuration) is about.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine  # noqa: E402

METHODS = "none,smote,mixup,noise,cgan,infogan"


def build_store(path: Path, cache: Path, speakers: int, per_class: int) -> str:
    from mirage.featstore.corpora.demo import DemoCorpus
    from mirage.featstore.extract import extract

    if not (path / "zarr.json").exists():
        items = DemoCorpus(n_speakers=speakers, n_per_class=per_class).load_items(None, cache_dir=str(cache / "corpus"))
        extract(items, store=str(path), audio_model="logmel", text_model="none", progress=False)
    return str(path)


def cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def one_generator_job(store: str, work: Path) -> float:
    """Seconds of one InfoGAN fit + `--n 4x --min-mi 0.6` generation on fold 0's training rows."""
    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate
    from mirage.featstore.store import open_store

    fs = open_store(store)
    speakers = sorted(fs.items["speaker"].unique())
    fs.close()
    t0 = time.perf_counter()
    model = fit_generator(store, str(work / "gen"), exclude_speakers=[speakers[0]], progress=False)
    generate(model, str(work / "synth"), n="4x", min_mi=0.6, progress=False)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speakers", type=int, default=24)
    ap.add_argument("--per-class", type=int, default=15, help="utterances per speaker and emotion (4 emotions)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", default=None, help="an existing logmel store instead of the demo twin")
    ap.add_argument("--cache", default=None, help="where the demo store is built/reused (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="Print one JSON object on stdout (the table goes to stderr).")
    args = ap.parse_args(argv)
    stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr

    from mirage.featstore.runtime import Runtime
    from mirage.featstore.store import open_store
    from mirage.train.compare import compare

    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-compare-"))
    cache = Path(args.cache) if args.cache else tmp
    cache.mkdir(parents=True, exist_ok=True)
    try:
        store = args.store or build_store(cache / f"demo{args.speakers}x{args.per_class}.zarr", cache, args.speakers,
                                          args.per_class)
        fs = open_store(store)
        n_items, n_speakers = len(fs.items), int(fs.items["speaker"].nunique())
        fs.close()
        n_gen_jobs = 2 * n_speakers  # cgan and infogan, one job per outer fold

        floor_job_s = one_generator_job(store, tmp / "floor")
        floor_s = n_gen_jobs * floor_job_s / max(1, args.workers)

        c_self, c_kids = cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        compare(store, str(tmp / "cmp"), methods=METHODS, evaluation="loso", n="4x", min_mi=0.6, cache="off", seed=0,
                runtime=Runtime(workers=args.workers, progress=False))
        wall = time.perf_counter() - t0
        cpu = (cpu_s(resource.RUSAGE_SELF) - c_self) + (cpu_s(resource.RUSAGE_CHILDREN) - c_kids)
        doc = {"machine": machine(), "store": store, "n_items": n_items, "n_folds": n_speakers, "methods": METHODS,
               "workers": args.workers, "compare_wall_s": round(wall, 1), "compare_wall_min": round(wall / 60, 2),
               "compare_cpu_s": round(cpu, 1), "generator_jobs": n_gen_jobs,
               "one_generator_job_s": round(floor_job_s, 2), "floor_s": round(floor_s, 1),
               "compare_over_floor": round(wall / floor_s, 3), "goal_met": wall <= 60}
        print(f"bench/compare.py — {doc['machine']}")
        print(f"store: {store} ({n_items} items, {n_speakers} speakers = LOSO folds); methods {METHODS}, "
              f"--n 4x --min-mi 0.6, --workers {args.workers}, --cache off")
        print(f"  one generator job (fit + generate, fold 0, 1 thread)  {floor_job_s:7.2f} s")
        print(f"  floor: {n_gen_jobs} jobs x that / {args.workers} workers          {floor_s:7.1f} s")
        print(f"  train compare wall time                              {wall:7.1f} s  ({cpu:.0f} CPU-s)")
        print(f"  compare / floor = {wall / floor_s:.2f}; goal <= 60 s: {'met' if wall <= 60 else 'NOT met'}")
        if args.json:
            stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(tmp / "cmp", ignore_errors=True)
        shutil.rmtree(tmp / "floor", ignore_errors=True)
        if args.cache is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
