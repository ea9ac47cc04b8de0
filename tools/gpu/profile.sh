#!/bin/bash
# Where the GPU time goes now (session 18, after first_step.sh measured the matrix-product
# route): cubecl's profiling log (one `| duration | kernel |` table per sync) of a few `paper`
# VQ-VAE steps with phase timings on (each phase ends in a sync, so the tables split into
# forward, backward and optimizer), then of the DAT heads daam-v1 and mha. ~3 minutes with the
# kernel cache first_step.sh returned at .gpudata/kc.tgz (timeout_s ~200). Read the logs with
# `python3 tools/gpu/profile_summary.py LOG [BLOCKS]` (kernel time by kernel, per sync).
set -u
source tools/gpu/common.sh
PACK=profile-results
export NO_COLOR=1 RUST_LOG=vqvae::train=debug
carried_kernel_cache
require_bin vqvae-fixed train_step-fixed
profiled() {
    printf '[compilation]\ncache = { file = "/tmp/kc" }\n\n[autotune]\ncache = { file = "/tmp/kc" }\n\n[profiling]\nlogger = { file = "%s", level = "basic" }\n' "$1" >cubecl.toml
}
profiled "$OUT/profile-paper.log"
train paper vqvae-fixed paper "${PAPER_SECONDS:-120}" "${PAPER_STEPS:-4}"
grep 'phases' "$OUT/paper.log" | tail -3
profiled "$OUT/profile-heads.log"
stamp "profile: DAT heads daam-v1, mha"
deadline 30 "$BIN/train_step-fixed" --device cuda --heads daam-v1,mha --warmup 2 --iters 3 >"$OUT/profile-heads.out" 2>&1
cut -c1-120 "$OUT/profile-heads.out"
rm -f cubecl.toml
wc -l "$OUT"/profile-*.log
stamp done
pack
