"""Which shard score tracks the UAR change? Per fold of finished `train compare` runs (with
infogan and none): the infogan shards' scores from `augment inspect` (mi_score, c2st_acc,
precision, recall, density, coverage, frechet) against the fold's UAR delta vs none, then a
Spearman correlation over every (run, fold) point.

Usage: OMP_NUM_THREADS=1 python bench/levers_fidelity.py --store S RUN [RUN ...]
(writes RUN/fidelity.json once per run; prints a markdown table).
"""
import argparse
import glob
import json
import os

import numpy as np
from scipy.stats import spearmanr

from mirage.augment.inspect import inspect_shards

KEYS = ("mi_score", "c2st_acc", "precision", "recall", "density", "coverage", "frechet")


def score_run(run: str, store: str) -> list[dict]:
    out = os.path.join(run, "fidelity.json")
    if os.path.exists(out):
        return json.load(open(out))
    table = json.load(open(os.path.join(run, "compare.json")))
    slug = {"".join(c if c.isalnum() or c in "-_." else "-" for c in f["name"]): f["name"] for f in table["infogan"]["folds"]}
    rows = []
    for man in sorted(glob.glob(os.path.join(run, "generators", "infogan", "*", "shards"))):
        fold = slug[man.split("/")[-2]]
        shards = inspect_shards(man, store=store)["shards"]
        w = [s["n_items"] for s in shards]
        row = {"fold": fold, "delta": table["infogan"]["fold_uar"][fold] - table["none"]["fold_uar"][fold]}
        for k in KEYS:
            vals = [(s[k], x) for s, x in zip(shards, w) if s.get(k) is not None]
            row[k] = sum(v * x for v, x in vals) / sum(x for _, x in vals) if vals else None
        rows.append(row)
        print(run, row, flush=True)
    json.dump(rows, open(out, "w"), indent=1)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    pts = [dict(r, run=os.path.basename(run)) for run in args.runs for r in score_run(run, args.store)]
    d = np.array([p["delta"] for p in pts])
    print(f"{len(pts)} (run, fold) points from {sorted(set(p['run'] for p in pts))}")
    print("| score | mean | min | max | Spearman rho with fold delta | p |\n|---|---|---|---|---|---|")
    for k in KEYS:
        v = np.array([np.nan if p[k] is None else p[k] for p in pts], float)
        ok = np.isfinite(v)
        if ok.sum() < 3 or np.ptp(v[ok]) == 0:
            print(f"| {k} | n/a | | | n/a | |")
            continue
        r, pv = spearmanr(v[ok], d[ok])
        print(f"| {k} | {np.nanmean(v):.3f} | {np.nanmin(v):.3f} | {np.nanmax(v):.3f} | {r:+.2f} | {pv:.2g} |")
    for run in sorted(set(p["run"] for p in pts)):
        rs = [p for p in pts if p["run"] == run]
        print(run, "delta %+.4f" % np.mean([p["delta"] for p in rs]),
              " ".join(f"{k} {np.mean([p[k] for p in rs if p[k] is not None]):.3f}" for k in KEYS))


if __name__ == "__main__":
    main()
