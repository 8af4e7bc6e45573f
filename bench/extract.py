"""Extraction throughput and memory, each against a plain baseline measured in the same run.

    python bench/extract.py [--n 96] [--json] [--parts model,io,memory]

1. model-bound: a wav2vec2-base-sized model (random weights: the cost is the architecture)
   through `featstore extract`, through a plain per-utterance transformers loop, and as
   forward passes alone on pre-decoded, pre-resampled audio (same batches as featstore).
2. I/O-bound: `logmel` through `featstore extract` against soundfile decoding alone. Every file
   is read once before either is timed, so neither pays for a cold page cache (an earlier 0.41
   came from a decode baseline that read most files from disk); CPU seconds are reported too,
   as wall time on a shared box mostly measures the process's share of the cores.
3. memory: peak RSS of a `featstore extract` process (logmel) at 1x and 4x the utterances,
   and of the default extractor (Whisper-base) on one long clip (`--long-clip-s`, 600 s)
   against a 2-s clip: windows keep memory flat whatever the clip length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Timer, bench_items, machine  # noqa: E402


def build_w2v2(folder: Path) -> str:
    """wav2vec2-base geometry (12 x 768, 7 conv layers), layer-norm variant so batches can be padded."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True)
    Wav2Vec2Model(cfg).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return str(folder)


def plain_loop(items, model_dir: str) -> None:
    """What a researcher's script does: read, resample, forward, mean — one file at a time."""
    import soundfile as sf
    import torch
    import torchaudio
    from transformers import AutoFeatureExtractor, AutoModel

    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    net = AutoModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        for path in items["path"]:
            wave, sr = sf.read(path, dtype="float32")
            wave = torchaudio.functional.resample(torch.from_numpy(wave), sr, 16000).numpy()
            inputs = fe(wave, sampling_rate=16000, return_tensors="pt")
            net(**inputs).last_hidden_state.mean(dim=1)


def forward_only(waves, model_dir: str, batch_size: int) -> None:
    from mirage.featstore.extract import length_batches
    from mirage.featstore.extractors import get_audio_extractor

    ex = get_audio_extractor(model_dir)
    ex.load()
    for batch in length_batches({i: len(w) for i, w in enumerate(waves)}, batch_size):
        ex.embed([waves[i] for i in batch])


def peak_rss_mib(table: str, store: str, audio_model: str = "logmel") -> float:
    code = (
        "import resource, sys; from mirage.featstore.extract import extract; "
        f"extract('csv', root={table!r}, store={store!r}, audio_model={audio_model!r}, text_model='none', progress=False); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96, help="utterances for the model-bound part")
    ap.add_argument("--n-io", type=int, default=535, help="utterances for the I/O-bound part")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--long-clip-s", type=float, default=600.0, help="length of the long clip for the memory part")
    ap.add_argument("--json", action="store_true", help="Print one JSON object on stdout (the table goes to stderr).")
    ap.add_argument("--io-repeats", type=int, default=2, help="rounds of decode vs logmel (best of each)")
    ap.add_argument("--parts", default="model,io,memory", help="comma list of model, io, memory (default: all)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr

    import pandas as pd
    import torch

    from mirage.featstore import audio as audio_io
    from mirage.featstore.extract import extract

    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-"))
    items, corpus = bench_items(max(args.n, args.n_io), str(tmp / "demo"))
    model_items = items.iloc[: args.n]
    audio_s = float(model_items["duration_s"].sum())
    print(f"machine: {machine()}, torch threads {torch.get_num_threads()}")
    print(f"corpus: {corpus}, {len(model_items)} utterances, {audio_s:.0f} audio-s for the model-bound part")
    results: dict = {"machine": machine(), "corpus": corpus}

    t_fs = t_fwd = None
    if "model" in parts:
        model_dir = build_w2v2(tmp / "w2v2-base")
        waves = [audio_io.load(p, 16000) for p in model_items["path"]]
        forward_only(waves[:2], model_dir, args.batch_size)  # warm-up (allocator, kernels)
        with Timer() as t_fwd:
            forward_only(waves, model_dir, args.batch_size)
        with Timer() as t_plain:
            plain_loop(model_items, model_dir)
        with Timer() as t_fs:
            extract(model_items, store=str(tmp / "w2v2.zarr"), audio_model=model_dir, text_model="none",
                    batch_size=args.batch_size, progress=False)
        results["model_bound"] = {
            "utterances": len(model_items), "audio_s": audio_s,
            "forward_only_audio_s_per_s": audio_s / t_fwd.s, "plain_loop_audio_s_per_s": audio_s / t_plain.s,
            "featstore_audio_s_per_s": audio_s / t_fs.s,
            "featstore_over_forward_time": t_fs.s / t_fwd.s, "plain_over_featstore_time": t_plain.s / t_fs.s,
        }
        print("\n== model-bound: wav2vec2-base-sized, random weights ==")
        print(f"forward only (pre-decoded)   {audio_s / t_fwd.s:8.1f} audio-s/s   {t_fwd.s:7.1f} s")
        print(f"plain per-utterance loop     {audio_s / t_plain.s:8.1f} audio-s/s   {t_plain.s:7.1f} s")
        print(f"featstore extract            {audio_s / t_fs.s:8.1f} audio-s/s   {t_fs.s:7.1f} s")
        print(f"featstore / forward-only time: {t_fs.s / t_fwd.s:.2f}x (goal <= 1.3x); "
              f"plain loop / featstore time: {t_plain.s / t_fs.s:.2f}x (goal > 1)")

    io_items = items.iloc[: args.n_io]
    if "io" in parts:
        results["io_bound"] = io_bound(io_items, tmp, args.io_repeats)
        results["logmel_over_decode"] = round(results["io_bound"]["featstore_over_decode_rate"], 3)

    if "memory" in parts:
        rss = {}
        for factor in (1, 4):
            rows = [dict(r, utt_id=f"{r['utt_id']}-{k}") for k in range(factor) for r in io_items.to_dict("records")]
            table = tmp / f"x{factor}.csv"
            pd.DataFrame(rows).to_csv(table, index=False)
            rss[factor] = peak_rss_mib(str(table), str(tmp / f"rss{factor}.zarr"))
        results["memory"] = {"peak_rss_mib_1x": rss[1], "peak_rss_mib_4x": rss[4], "ratio_4x_over_1x": rss[4] / rss[1],
                             "utterances_1x": len(io_items)}
        print("\n== memory: peak RSS of featstore extract (logmel) ==")
        print(f"1x ({len(io_items)} utts) {rss[1]:7.0f} MiB   4x ({4 * len(io_items)} utts) {rss[4]:7.0f} MiB   "
              f"ratio {rss[4] / rss[1]:.2f} (goal: flat)")
        long_rss = long_clip_rss(tmp, args.long_clip_s)
        results["memory"].update(long_rss)
        print(f"whisper-base: a 2-s clip {long_rss['whisper_peak_rss_mib_short']:7.0f} MiB, a {args.long_clip_s:.0f}-s clip "
              f"{long_rss['whisper_peak_rss_mib_long']:7.0f} MiB (goal <= 2048 MiB)")
    if t_fs is not None:
        results["featstore_over_forward"] = round(t_fs.s / t_fwd.s, 3)
    if args.json:
        stdout.write(json.dumps(results, sort_keys=True) + "\n")


def io_bound(io_items, tmp: Path, repeats: int = 2) -> dict:
    """logmel through featstore extract against soundfile decoding alone, both on a warm page cache."""
    import time
    from types import SimpleNamespace

    import soundfile as sf

    from mirage.featstore.extract import extract
    from mirage.featstore.extractors import get_audio_extractor

    io_s = float(io_items["duration_s"].sum())
    for p in io_items["path"]:  # warm the page cache for both timings
        with open(p, "rb") as fh:
            fh.read()
    extract(io_items.iloc[:8], store=str(tmp / "logmel-warm.zarr"), audio_model="logmel", text_model="none", progress=False)
    best = {"dec": (float("inf"), 0.0), "lm": (float("inf"), 0.0)}
    for k in range(repeats):  # alternated, best wall time of each (with its CPU time): the box is shared
        c0, t0 = time.process_time(), time.perf_counter()
        for p in io_items["path"]:
            sf.read(p, dtype="float32")
        best["dec"] = min(best["dec"], (time.perf_counter() - t0, time.process_time() - c0))
        c0, t0 = time.process_time(), time.perf_counter()
        extract(io_items, store=str(tmp / f"logmel-{k}.zarr"), audio_model="logmel", text_model="none", progress=False)
        best["lm"] = min(best["lm"], (time.perf_counter() - t0, time.process_time() - c0))
    t_dec, c_dec = SimpleNamespace(s=best["dec"][0]), best["dec"][1]
    t_lm, c_lm = SimpleNamespace(s=best["lm"][0]), best["lm"][1]
    out = {"utterances": len(io_items), "audio_s": io_s, "decode_only_audio_s_per_s": io_s / t_dec.s,
           "featstore_logmel_audio_s_per_s": io_s / t_lm.s, "featstore_over_decode_rate": t_dec.s / t_lm.s,
           "decode_cpu_s": c_dec, "featstore_logmel_cpu_s": c_lm, "featstore_over_decode_cpu": c_dec / c_lm,
           "resampler": get_audio_extractor("logmel").config().get("resampler", "sinc"), "repeats": repeats}
    print(f"\n== I/O-bound: logmel, {len(io_items)} utterances (warm page cache, best of {repeats}) ==")
    print(f"soundfile decode only        {io_s / t_dec.s:8.1f} audio-s/s   {c_dec:6.2f} CPU-s")
    print(f"featstore extract (logmel)   {io_s / t_lm.s:8.1f} audio-s/s   {c_lm:6.2f} CPU-s (resampler {out['resampler']})")
    print(f"featstore rate / decode rate: {t_dec.s / t_lm.s:.2f} (goal >= 0.5); CPU ratio {c_dec / c_lm:.2f}")
    return out


def long_clip_rss(tmp: Path, long_s: float) -> dict:
    """Peak RSS of the default extractor on one short and one long clip (separate processes)."""
    import numpy as np
    import pandas as pd
    import soundfile as sf

    out = {}
    for key, seconds in (("short", 2.0), ("long", long_s)):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = (0.2 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype("f4")
        path = tmp / f"clip-{key}.wav"
        sf.write(path, wave, 16000)
        table = tmp / f"clip-{key}.csv"
        pd.DataFrame([{"path": str(path), "label": "neutral", "speaker": "s1"}]).to_csv(table, index=False)
        out[f"whisper_peak_rss_mib_{key}"] = peak_rss_mib(str(table), str(tmp / f"clip-{key}.zarr"), "whisper-base")
    out["long_clip_s"] = long_s
    return out


if __name__ == "__main__":
    main()
