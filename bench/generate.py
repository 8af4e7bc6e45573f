"""Generation throughput against generator forward passes alone, and `augment fit` wall time.

    python bench/generate.py [--n 100000] [--shard-size 4096] [--mode ser] [--json]

1. The store: EmoDB (../shared/corpora/emodb, logmel + MiniLM) built with the featstore
   API, or the demo corpus when EmoDB is absent; cached under --cache.
2. `augment fit` on it (default settings): wall time.
3. `augment generate --n N` end to end (sampling, G, MI scoring, shard writes, manifest)
   in synthetic rows/s, against the same rows through G's forward pass alone (same
   batches, same thread count). Goal (issue 14): end to end within 1.2x of forward alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_EMODB, Timer, machine  # noqa: E402


def build_store(cache: Path) -> tuple[str, str]:
    from mirage.featstore.extract import extract

    if SHARED_EMODB.exists():
        store, name = cache / "emodb.zarr", "EmoDB (2 s truncated copy)"
        extract("emodb", root=str(SHARED_EMODB), store=str(store), audio_model="logmel", progress=False)
    else:
        store, name = cache / "demo.zarr", "demo"
        extract("demo", store=str(store), cache_dir=str(cache / "demo"), audio_model="logmel", progress=False)
    return str(store), name


def forward_only(model_dir: str, n: int, batch: int, threads: int, seed: int = 0, heads: bool = False) -> None:
    """G(z, y, t) for n rows in batches of ``batch`` (codes drawn as generate draws them);
    with ``heads`` also the Q_y/Q_t pass that MI scoring needs."""
    import torch

    from mirage.augment.checkpoint import load_checkpoint
    from mirage.augment.sampling import CodeSpec
    from mirage.augment.seeding import fixed_threads, numpy_rng, torch_generator

    b = load_checkpoint(model_dir)
    spec = CodeSpec.from_bundle(b)
    labels = spec.label_plan(n, balanced=False, seed=seed)
    with fixed_threads(threads), torch.no_grad():
        for s in range(0, n, batch):
            y = labels[s:s + batch]
            rows = spec.code_rows(y, numpy_rng(seed, "bench", s))
            z = torch.randn(len(y), spec.noise_dim, generator=torch_generator(seed, "bench", s))
            t = torch.from_numpy(b.transform("text").forward(spec.text_codes[rows])) if b.use_text else None
            h = b.generator(z, torch.from_numpy(y), t)
            if heads:
                b.align.heads(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="synthetic rows to generate")
    ap.add_argument("--shard-size", type=int, default=4096)
    ap.add_argument("--mode", choices=["ser", "multimodal"], default="ser")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of generation (generate's default: 1)")
    ap.add_argument("--cache", default=None, help="where the store is built/reused (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="Print one JSON object on stdout (the table goes to stderr).")
    args = ap.parse_args()
    stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr

    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate

    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-gen-"))
    cache = Path(args.cache) if args.cache else tmp
    cache.mkdir(parents=True, exist_ok=True)
    store, corpus = build_store(cache)
    print(f"machine: {machine()}; torch threads: 1 (augment fit's default), {args.threads} (generate)")
    print(f"corpus: {corpus}, store {store}")

    with Timer() as t_fit:
        model = fit_generator(store, str(tmp / "gen"), mode=args.mode, progress=False)
    cfg = json.loads((Path(model) / "config.json").read_text())
    print(f"\n== augment fit --mode {args.mode} (defaults: {cfg['epochs']['align']} + {cfg['epochs']['gan']} epochs, "
          f"{cfg['n_train_items']} items, audio dim {cfg['dims']['audio']}) ==")
    print(f"wall time {t_fit.s:.1f} s; MI score of its samples {cfg['final']['mi_score']:.3f}")

    forward_only(str(model), min(args.n, 4 * args.shard_size), args.shard_size, args.threads)  # warm-up
    with Timer() as t_fwd:
        forward_only(str(model), args.n, args.shard_size, args.threads)
    with Timer() as t_heads:
        forward_only(str(model), args.n, args.shard_size, args.threads, heads=True)
    with Timer() as t_gen:
        res = generate(str(model), str(tmp / "synth"), n=args.n, shard_size=args.shard_size, progress=False,
                       num_threads=args.threads)
    ratio = t_gen.s / t_fwd.s
    print(f"\n== augment generate --n {args.n} --shard-size {args.shard_size} ({res.n_shards} shards) ==")
    print(f"generator forward only   {args.n / t_fwd.s:10.0f} rows/s   {t_fwd.s:6.2f} s")
    print(f"G + Q heads forward      {args.n / t_heads.s:10.0f} rows/s   {t_heads.s:6.2f} s")
    print(f"generate end to end      {res.n_items / t_gen.s:10.0f} rows/s   {t_gen.s:6.2f} s")
    print(f"end-to-end / forward-only time: {ratio:.2f}x (goal <= 1.2x); "
          f"end-to-end / (G + heads) time: {t_gen.s / t_heads.s:.2f}x")
    results = {"machine": machine(), "corpus": corpus, "mode": args.mode,
               "fit": {"wall_s": t_fit.s, "epochs": cfg["epochs"], "n_items": cfg["n_train_items"],
                       "mi_score": cfg["final"]["mi_score"]},
               "generate": {"rows": res.n_items, "shard_size": args.shard_size, "threads": args.threads,
                            "forward_rows_per_s": args.n / t_fwd.s, "forward_with_heads_rows_per_s": args.n / t_heads.s,
                            "end_to_end_rows_per_s": res.n_items / t_gen.s,
                            "end_to_end_over_forward_time": ratio}}
    results["generate_over_forward"] = round(ratio, 3)
    shutil.rmtree(tmp / "synth", ignore_errors=True)
    if args.json:
        stdout.write(json.dumps(results, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
