#!/bin/bash
# Before/after on one card in one call, alternated (A B A B): `paper` VQ-VAE training runs
# ending after PAPER_STEPS steps (default 10; the rate is the median of the last two thirds),
# then the DAT heads HEADS (default daam-v1,mixture,mha) with the bench `train_step`.
#   A: binaries BIN_A (default `fixed`: .gpudata/vqvae-fixed.xz, train_step-fixed.xz) with the
#      environment ENV_A (default "DAAM_FOLD=fewer": the routes of session 20's measured build,
#      628 ms per `paper` step on an H100)
#   B: BIN_B (default `fixed`) with ENV_B (default empty: the build's own routes)
# Session 18 ran it as BIN_A=base ENV_A= ENV_B= (vqvae-base.xz: the build before c8ecd06's
# two-pass sums); session 20 with ENV_A="DAAM_UNFOLD=slices DAAM_MIXTURE=per-head" (c8ecd06's
# routes, 1,078 ms). Carry the files it runs, not all of .gpudata (61 MiB since session 19; the
# carry limit is 64 MiB): .gpudata/vqvae-fixed.xz, .gpudata/train_step-fixed.xz and the kernel
# cache .gpudata/kc.tgz; ~3 minutes (timeout_s ~230). HEADS_DEADLINE (default 40 s) bounds each
# side's heads run; give the first more on a machine without a carried kernel cache.
set -u
source tools/gpu/common.sh
PACK=ab-results
export NO_COLOR=1 RUST_LOG=vqvae::train=debug
carried_kernel_cache
BIN_A=${BIN_A:-fixed} BIN_B=${BIN_B:-fixed}
ENV_A=${ENV_A-DAAM_FOLD=fewer} ENV_B=${ENV_B-}
require_bin "vqvae-$BIN_A" "vqvae-$BIN_B"
steps=${PAPER_STEPS:-10}
# `with_env "A=1 B=2" CMD...`: CMD (a function too) in a subshell with those variables exported.
with_env() {
    local assignments=$1
    shift
    # shellcheck disable=SC2086
    ( [ -z "$assignments" ] || export $assignments; "$@" )
}
for round in 1 2; do
    for side in A B; do
        bin=BIN_$side env=ENV_$side
        stamp "$side: vqvae-${!bin} ${!env}"
        with_env "${!env}" train "paper-$side-$round" "vqvae-${!bin}" paper 80 "$steps"
        grep 'phases' "$OUT/paper-$side-$round.log" | tail -1 | sed 's/.*step/step/'
    done
done
for side in A B; do
    bin=BIN_$side env=ENV_$side
    [ -x "$BIN/train_step-${!bin}" ] || continue
    stamp "$side heads: train_step-${!bin} ${!env}"
    with_env "${!env}" deadline "${HEADS_DEADLINE:-40}" "$BIN/train_step-${!bin}" --device cuda --heads "${HEADS:-daam-v1,mixture,mha}" \
        --warmup 5 --iters 30 2>"$OUT/heads-$side.err" | tee "$OUT/heads-$side.jsonl"
done
save_cache
stamp done
pack
