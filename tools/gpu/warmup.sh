#!/bin/bash
# A time-boxed GPU pass (about 9 minutes) on the first-step problem of NOTES.md: burn's CUDA
# backend compiles (NVRTC) and autotunes every new kernel shape on its first steps.
# Compares, on the `vqvae` training loop:
#   - `vqvae-fixed`: built with `--no-default-features --features cuda` (no cubecl autotune: one
#     kernel per op and shape), cold and then again with its PTX cache warm;
#   - `vqvae`: the default `--features cuda` build (autotune on), cold, with its own caches;
# and PyTorch on the same card. Time to the first step is read from step 1's images/s in
# metrics.csv (batch / images_per_second: step 1 holds the compilation), the steady state from
# the median of the later steps.
#
# The binaries, built here and packed before the call (carry `.gpudata`):
#   cargo build --release -p vqvae --no-default-features --features cuda
#   strip -o /tmp/vf target/release/vqvae && xz -6 -c /tmp/vf >.gpudata/vqvae-fixed.xz
#   cargo build --release -p vqvae --features cuda
#   strip -o /tmp/va target/release/vqvae && xz -6 -c /tmp/va >.gpudata/vqvae.xz
set -u
source tools/gpu/common.sh
PACK=warmup-results

stamp "PyTorch"
for preset in small paper; do
    peak_gpu "$OUT/torch-$preset.log" python3 tools/vqvae_torch.py --preset $preset --device cuda --steps 30 --warmup 10
    grep '^torch' "$OUT/torch-$preset.log" || tail -3 "$OUT/torch-$preset.log"
done
pack

kernel_cache /tmp/kc-fixed
train fixed-small-cold vqvae-fixed small 150
train fixed-small-warm vqvae-fixed small 45
ls -la /tmp/kc-fixed | head; du -sh /tmp/kc-fixed
train fixed-paper vqvae-fixed paper 150

kernel_cache /tmp/kc-autotune
train autotune-small-cold vqvae small 90

stamp done
pack
