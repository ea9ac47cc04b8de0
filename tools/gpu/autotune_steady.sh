#!/bin/bash
# The autotune build's steady state (NOTES.md "Next time", step 4): burn-cubecl without autotune
# runs every matrix product through cubek's `Strategy::Auto` (one tensor-core kernel with its
# default blueprint); with autotune, cubecl times candidates per shape and caches its choice.
# Session 11 never saw an autotune step end (it also tuned burn's convolutions: 122 s for the
# first forward). Here the convolutions stay matrix products (DAAM_CONV=gemm), so only matrix
# products and reductions are tuned. `DAAM_CONV=backend bash tools/gpu/autotune_steady.sh` runs
# burn's own convolutions instead (the autotune build's default), tuned among its direct,
# im2col and implicit-GEMM kernels (these never write the unfolded columns; their data gradient
# falls back to a direct kernel at strides above 1).
#   1. vqvae-autotune `paper` for up to AUTOTUNE_SECONDS (default 330) and AUTOTUNE_STEPS steps
#      (default 30), phases logged per step; the kernel cache (PTX and autotune results) is
#      packed into $FINAL/kc.tgz every 20 s, so a call cut off still brings it back: carry it
#      (.gpudata/kc.tgz) into the next call, which then starts from the tuned choices.
#   2. a few profiled steps (below), then, if time is left (HEADS_BEFORE, default 420 s into
#      the call), train_step-autotune on
#      the DAT heads HEADS (default daam-v1,mixture,mha), deadline 60 s.
# Needs .gpudata/{vqvae,train_step}-autotune.xz (`bash tools/gpu/build.sh autotune`). Compare
# with the `fixed` build's figures of the same session (ab.sh or first_step.sh), not across
# cards. timeout_s ~480.
set -u
source tools/gpu/common.sh
PACK=autotune-steady-results
export NO_COLOR=1 RUST_LOG=vqvae::train=debug DAAM_CONV=${DAAM_CONV:-gemm}
carried_kernel_cache
require_bin vqvae-autotune
while sleep 20; do save_cache; pack; done &
packer=$!

train paper-autotune vqvae-autotune paper "${AUTOTUNE_SECONDS:-330}" "${AUTOTUNE_STEPS:-30}"
grep -m 3 -E 'done in|phases' "$OUT/paper-autotune.log"
grep 'phases' "$OUT/paper-autotune.log" | tail -3
save_cache
stamp "kernel cache: $(find /tmp/kc -type f | wc -l) files, $(du -sh /tmp/kc | cut -f1)"

# 2. The tuned kernels by name and time: PROFILE_STEPS (default 3) `paper` steps with cubecl's
#    profiling log, starting from the autotune choices the run before cached (skipped
#    PROFILE_BEFORE seconds into the call, default 380; PROFILE_STEPS=0 skips it).
if [ "${PROFILE_STEPS:-3}" -gt 0 ] && [ "$(( $(date +%s) - t0 ))" -lt "${PROFILE_BEFORE:-380}" ]; then
    printf '[compilation]\ncache = { file = "/tmp/kc" }\n\n[autotune]\ncache = { file = "/tmp/kc" }\n\n[profiling]\nlogger = { file = "%s", level = "basic" }\n' \
        "$OUT/profile-paper-autotune.log" >cubecl.toml
    train paper-autotune-profiled vqvae-autotune paper 90 "${PROFILE_STEPS:-3}"
    grep 'phases' "$OUT/paper-autotune-profiled.log" | tail -1
    rm -f cubecl.toml
fi

if [ "$(( $(date +%s) - t0 ))" -lt "${HEADS_BEFORE:-420}" ] && [ -x "$BIN/train_step-autotune" ]; then
    stamp "autotune DAT heads ${HEADS:-daam-v1,mixture,mha} (deadline 60 s)"
    deadline 60 "$BIN/train_step-autotune" --device cuda --heads "${HEADS:-daam-v1,mixture,mha}" \
        --warmup 5 --iters 30 2>"$OUT/heads-autotune.err" | tee "$OUT/heads-autotune.jsonl"
    tail -2 "$OUT/heads-autotune.err"
fi
kill "$packer" 2>/dev/null
save_cache
stamp done
pack
