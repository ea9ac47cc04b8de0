#!/bin/bash
# A build's GPU figures against PyTorch's in one call on a fresh machine, for a session with
# 15 minutes of device time and no carried kernel cache (session 20):
#   1. PyTorch: `paper` VQ-VAE (10 steps after 3) and the DAT heads HEADS (default
#      daam-v1,mixture,mha), the baselines on the same card (~40 s);
#   2. ab.sh: `paper` PAPER_STEPS steps (default 10) alternated A B A B (A: session 20's
#      routes, `DAAM_FOLD=fewer`; B: the build's own), then the heads A and B;
#   3. profile.sh: cubecl's profiling log of 4 `paper` steps and of the heads daam-v1 and mha,
#      on the kernels the runs before compiled (skipped PROFILE_BEFORE seconds into the call,
#      default 420);
#   4. `small` against PyTorch and the other four DAT heads (below; ~60 s).
# Carry .gpudata/vqvae-fixed.xz and .gpudata/train_step-fixed.xz (`bash tools/gpu/build.sh`),
# and .gpudata/kc.tgz when a call before returned one. Returns measure-results.tgz (PyTorch),
# ab-results.tgz, profile-results.tgz and extra-results.tgz (each holds every log so far) and
# kc.tgz. Session 20 ran steps 1–3 in 188 s on a fresh machine; timeout_s ~540.
set -u
source tools/gpu/common.sh
PACK=measure-results
export NO_COLOR=1
require_bin vqvae-fixed train_step-fixed
heads=${HEADS:-daam-v1,mixture,mha}

torch_baselines "$heads"

# The scripts below source common.sh again: give them the device tool's $OUT back.
stamp "ab.sh"
OUT=$FINAL HEADS=$heads HEADS_DEADLINE=${HEADS_DEADLINE:-60} bash tools/gpu/ab.sh
if [ $(( $(date +%s) - t0 )) -lt "${PROFILE_BEFORE:-420}" ]; then
    stamp "profile.sh"
    OUT=$FINAL bash tools/gpu/profile.sh
    save_cache
else
    stamp "no time left for profile.sh"
fi

# 4. The rest of the figures the issues ask for, on the build's own routes, when time is left
#    (skipped EXTRA_BEFORE seconds into the call, default 300): `small` against PyTorch's, and
#    the DAT heads ab.sh did not time (OTHER_HEADS, default daam-v2,gq-daam,mha-bn,gqa).
if [ $(( $(date +%s) - t0 )) -lt "${EXTRA_BEFORE:-300}" ]; then
    PACK=extra-results
    other=${OTHER_HEADS:-daam-v2,gq-daam,mha-bn,gqa}
    stamp "PyTorch small and DAT heads $other"
    peak_gpu "$OUT/torch-small.log" python3 tools/vqvae_torch.py --preset small --device cuda --steps 30 --warmup 10
    echo "$(grep '^torch' "$OUT/torch-small.log") $(tail -1 "$OUT/torch-small.log")"
    python3 tools/bench_classify_torch.py --device cuda --heads "$other" --warmup 5 --iters 30 >"$OUT/heads-torch-other.jsonl"
    cut -c1-110 "$OUT/heads-torch-other.jsonl"
    export DAAM_KERNEL_CACHE=/tmp/kc RUST_LOG=vqvae::train=debug
    train small vqvae-fixed small 60 "${SMALL_STEPS:-100}"
    stamp "DAT heads $other (deadline 60 s)"
    deadline 60 "$BIN/train_step-fixed" --device cuda --heads "$other" --warmup 5 --iters 30 \
        2>"$OUT/heads-other.err" | tee "$OUT/heads-other.jsonl"
    pack
    save_cache
else
    stamp "no time left for small and the other heads"
fi
stamp done
