"""Peak memory of `featstore extract` on one long clip: is it bounded by the window, not the clip?

    python bench/memory.py [--clip-s 600] [--models whisper-base,logmel] [--json]

For each extractor (default: the default extractor, whisper-base with its 30-s windows, and
logmel), one `featstore extract` runs in a fresh process on a corpus of one synthetic clip of
``--clip-s`` seconds (a voiced, amplitude-modulated tone with noise, 16 kHz WAV), and again
on a 2-s clip; each process reports its peak resident set size (``ru_maxrss``). The short
clip is the floor (interpreter, torch, model weights); long minus short is what the clip's
length costs. The goal is a peak of at most 2 GB (2048 MiB) for the 10-minute clip.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine  # noqa: E402

GOAL_MIB = 2048.0
SAMPLE_RATE = 16000


def write_clip(path: Path, seconds: float, seed: int = 0) -> None:
    """A speech-like test signal: 120-220 Hz voiced harmonics, syllable-rate envelope, noise."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(SAMPLE_RATE * seconds)
    with sf.SoundFile(str(path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as fh:
        step = SAMPLE_RATE * 10  # written in 10-s pieces: the bench itself stays small
        for s in range(0, n, step):
            t = np.arange(s, min(n, s + step)) / SAMPLE_RATE
            f0 = 170 + 50 * np.sin(2 * np.pi * 0.3 * t)
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
            env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
            fh.write((0.15 * env * voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32))


def peak_rss(table: Path, store: Path, audio_model: str) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one extraction in a fresh process."""
    code = (
        "import resource; from mirage.featstore.extract import extract; "
        f"extract('csv', root={str(table)!r}, store={str(store)!r}, audio_model={audio_model!r}, text_model='none', "
        "progress=False); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench/memory.py: extract with {audio_model} failed: {tail}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip-s", type=float, default=600.0, help="length of the long clip in seconds (default 600)")
    ap.add_argument("--models", default="whisper-base,logmel", help="extractors, comma-separated")
    ap.add_argument("--tmp", default=None, help="folder for the temporary corpus and stores")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()

    import pandas as pd

    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-memory-", dir=args.tmp))
    results: dict = {"machine": machine(), "clip_s": args.clip_s, "goal_mib": GOAL_MIB, "models": {}}
    try:
        tables = {}
        for key, seconds in (("short", 2.0), ("long", args.clip_s)):
            wav = tmp / f"{key}.wav"
            write_clip(wav, seconds)
            tables[key] = tmp / f"{key}.csv"
            pd.DataFrame([{"path": str(wav), "label": "neutral", "speaker": "s1"}]).to_csv(tables[key], index=False)
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            row = {}
            for key in ("short", "long"):
                rss, wall = peak_rss(tables[key], tmp / f"{model}-{key}.zarr", model)
                row[f"peak_rss_mib_{key}"] = round(rss, 1)
                row[f"wall_s_{key}"] = round(wall, 1)
            row["clip_cost_mib"] = round(row["peak_rss_mib_long"] - row["peak_rss_mib_short"], 1)
            row["goal_met"] = row["peak_rss_mib_long"] <= GOAL_MIB
            results["models"][model] = row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return
    print(f"bench/memory.py — {results['machine']}; one clip of {args.clip_s:.0f} s vs one of 2 s")
    for model, r in results["models"].items():
        print(f"  {model:14s} peak RSS {r['peak_rss_mib_long']:7.0f} MiB ({r['wall_s_long']:.0f} s)   2-s clip "
              f"{r['peak_rss_mib_short']:7.0f} MiB   clip costs {r['clip_cost_mib']:6.0f} MiB   "
              f"goal <= {GOAL_MIB:.0f} MiB: {'met' if r['goal_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
