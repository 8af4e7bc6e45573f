"""Whisper-base: padded 30-s windows (Whisper's own input) against `--window-s auto`, in one run.

    python bench/whisper_window.py [--n 535] [--windows auto,30] [--json]

For each window setting: `featstore extract --audio-layer all` over the same EmoDB items
(the demo corpus without ../shared), wall time and audio-seconds per second, then the
leave-one-speaker-out UAR of `train fit` (linear) on every hidden state and on the
default. Ratios are against the padded (30 s) run of the same process. On 2 cores the
full 535-item padded extraction takes about 12 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Timer, bench_items, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=535, help="Items (EmoDB has 535; fewer only for a quick try).")
    ap.add_argument("--windows", default="auto,30", help="Comma-separated --window-s settings; the last is the baseline.")
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--json", action="store_true", help="Print one JSON object instead of the table.")
    args = ap.parse_args()

    from mirage.featstore.extract import extract
    from mirage.featstore.extractors import get_audio_extractor
    from mirage.train.fit import fit

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        items, corpus = bench_items(args.n, tmp)
        audio_s = float(items["duration_s"].sum())
        get_audio_extractor(args.model).dim  # convert the weights once, outside the timings
        for window in args.windows.split(","):
            store = str(Path(tmp) / f"w{window}.zarr")
            with Timer() as t:
                extract(items, store=store, audio_model=args.model, audio_layer="all", window_s=window,
                        text_model="none", progress=False)
            n_states = extract(items, store=store, audio_model=args.model, audio_layer="all", window_s=window,
                               text_model="none", progress=False).store.row_shape("audio_layers")[0]
            uars = {}
            for layer in [*range(n_states), "mean", "weighted"]:
                m = fit(store, str(Path(tmp) / f"fit-{window}-{layer}"), evaluation="loso", layer=layer).metrics
                uars[str(layer)] = round(m["uar_mean"], 4)
            default = fit(store, str(Path(tmp) / f"fit-{window}-default"), evaluation="loso").metrics["uar_mean"]
            results[window] = {"wall_s": round(t.s, 2), "audio_s_per_s": round(audio_s / t.s, 2),
                               "uar_by_layer": uars, "uar_default": round(default, 4)}
    base = results[args.windows.split(",")[-1]]
    out = {"machine": machine(), "corpus": corpus, "n_items": len(items), "model": args.model, "windows": results,
           **{f"speed_{w}_over_{args.windows.split(',')[-1]}": round(base["wall_s"] / r["wall_s"], 2) for w, r in results.items()}}
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"{args.model} on {corpus}, {len(items)} items, {machine()}")
    layers = list(next(iter(results.values()))["uar_by_layer"])
    print(f"{'window':<8} {'wall s':>8} {'audio-s/s':>10} {'speed':>6} {'default':>8} " + " ".join(f"{x:>8}" for x in layers))
    for w, r in results.items():
        print(f"{w:<8} {r['wall_s']:>8.1f} {r['audio_s_per_s']:>10.1f} {base['wall_s'] / r['wall_s']:>5.1f}x "
              f"{r['uar_default']:>8.3f} " + " ".join(f"{r['uar_by_layer'][x]:>8.3f}" for x in layers))


if __name__ == "__main__":
    main()
