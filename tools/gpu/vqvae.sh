#!/bin/bash
# Issue #3 on a GPU: (1) training images/s and peak GPU memory of `vqvae train --device cuda`
# beside tools/vqvae_torch.py --device cuda, `paper` and `small` presets; (2) the quality runs:
# `small` preset with and without DAAM, seeds 0 and 1, on random 64² crops of the photographs
# in .gpudata/photos/train (held-out: .gpudata/photos/val), all four at once on the card for
# QUALITY_SECONDS, checkpoints every 1000 steps, then `vqvae compare` at the last step all four
# reached, with the bicubic floor.
# Usage (device machine, repo root): bash tools/gpu/vqvae.sh   (results under $OUT)
set -u
source tools/gpu/common.sh
QUALITY_SECONDS=${QUALITY_SECONDS:-300}

echo "== speed"
for preset in paper small; do
    steps=40; [ $preset = small ] && steps=150
    run=/tmp/speed-$preset
    rm -rf $run
    peak_gpu "$OUT/speed-rust-$preset.log" deadline ${SPEED_SECONDS:-240} "$BIN/vqvae" train \
        --preset $preset --device cuda --max-steps $steps --out $run \
        || { tail -5 "$OUT/speed-rust-$preset.log"; }
    [ "$(wc -l <$run/metrics.csv)" -gt 12 ] || { echo "rust $preset: too few steps in time"; continue; }
    rate=$(median_column $run/metrics.csv images_per_second 10)
    echo "rust  $preset images_per_s=$rate $(tail -1 "$OUT/speed-rust-$preset.log")"
    peak_gpu "$OUT/speed-torch-$preset.log" python3 tools/vqvae_torch.py --preset $preset \
        --device cuda --steps 30 --warmup 10
    echo "$(grep images_per_s "$OUT/speed-torch-$preset.log") $(tail -1 "$OUT/speed-torch-$preset.log")"
done

echo "== quality ($QUALITY_SECONDS s, four runs at once)"
cat >/tmp/quality.toml <<'TOML'
[train]
checkpoint_every = 1000
keep_checkpoints = 100
sample_every = 2000
TOML
pids=()
for seed in 0 1; do
    for att in daam none; do
        deadline $QUALITY_SECONDS "$BIN/vqvae" train --preset small --device cuda \
            --config /tmp/quality.toml --data .gpudata/photos/train --val .gpudata/photos/val \
            --resize 256 --attention $att --seed $seed --max-steps 100000 \
            --out /tmp/runs/photos-$att-s$seed >"$OUT/train-$att-s$seed.log" 2>&1 &
        pids+=($!)
    done
done
wait "${pids[@]}"
# The last step every run has a checkpoint of (an interrupted run also saves an odd step).
last=$(python3 -c '
import glob, os
sets = [set(os.path.basename(p)[5:] for p in glob.glob(r + "/step-*")) for r in glob.glob("/tmp/runs/*")]
print(max(set.intersection(*sets)))')
echo "common last checkpoint: step-$last"
for r in /tmp/runs/*; do
    echo "$(basename $r): $(tail -1 $r/metrics.csv)"
    cp $r/metrics.csv "$OUT/metrics-$(basename $r).csv"
done
args=()
for r in daam-s0 daam-s1 none-s0 none-s1; do args+=(--checkpoint /tmp/runs/photos-$r/step-$last); done
"$BIN/vqvae" compare "${args[@]}" --label daam-s0 --label daam-s1 --label none-s0 --label none-s1 \
    --input .gpudata/photos/val --bicubic-floor --out /tmp/compare --device cuda >"$OUT/compare.log" 2>&1
cat /tmp/compare/comparison.md
cp -r /tmp/compare "$OUT/"
(cd /tmp && tar czf "$FINAL/vqvae-results.tgz" results)
for att in daam none; do
    (cd /tmp && tar czf "$FINAL/models-$att.tgz" --exclude optimizer.bin runs/photos-$att-*/step-$last runs/photos-$att-*/config.json)
done
ls -la "$FINAL"
