#!/usr/bin/env bash
# The whole pipeline on the self-generated demo corpus: extract -> fit -> generate -> compare.
# Run through `make demo` (which creates .venv first). Outputs go to demo_out/.
set -euo pipefail
OUT=${DEMO_OUT:-demo_out}
mkdir -p "$OUT"
start=$(date +%s)
step() { printf '\n== %s (%ds) ==\n' "$1" $(( $(date +%s) - start )); }

step "1/4 featstore extract: demo corpus -> $OUT/demo.zarr (Whisper-base audio + MiniLM text)"
# --window-s auto: each clip is encoded at its own length (about 20x faster than Whisper's
# 30-s padding on short clips, at a small cost in UAR; see the README's "Whisper windows").
featstore extract --corpus demo --store "$OUT/demo.zarr" --window-s auto
featstore info "$OUT/demo.zarr"

step "2/4 augment fit: MI-regularised InfoGAN on all demo speakers -> $OUT/gen"
augment fit --store "$OUT/demo.zarr" --out "$OUT/gen" --mode multimodal --seed 0

step "3/4 augment generate --n 4x --min-mi 0.6 -> $OUT/synth"
augment generate --model "$OUT/gen" --n 4x --min-mi 0.6 --out "$OUT/synth" --seed 0
augment inspect "$OUT/synth" --plot "$OUT/synth/embedding.png"

step "4/4 train compare (leave-one-speaker-out; a generator per fold, never seeing the test speaker)"
train compare --store "$OUT/demo.zarr" --methods none,cgan,infogan --n 4x --min-mi 0.6 --eval loso \
    --out "$OUT/compare" --seed 0 --workers 2

step "done"
cat "$OUT/compare/compare.md"
cat <<MSG

Where things went:
  feature store      $OUT/demo.zarr         (featstore info $OUT/demo.zarr --json)
  generator          $OUT/gen               (training curves: $OUT/gen/*.png, losses: $OUT/gen/*.csv)
  synthetic shards   $OUT/synth             (manifest: $OUT/synth/manifest.parquet, plot: $OUT/synth/embedding.png)
  comparison         $OUT/compare           (compare.json, compare.md, per-method metrics and confusion PNGs)
MSG
