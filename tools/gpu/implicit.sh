#!/bin/bash
# The implicit-GEMM convolution route (`DAAM_CONV=implicit`, session 21: cubek's tensor-core
# kernels run as one fusion op per convolution pass, never writing the unfolded input; session
# 22: the strided and transposed convolutions too, where cubek has no kernel for a pass (a
# transposed convolution, a strided one's data gradient) as one stride-1 convolution per output
# phase) against the matrix products, on one card in one call:
#   1. PyTorch's `paper` VQ-VAE step and DAT heads HEADS (default daam-v1,mixture,mha): the
#      baselines on the same card (~40 s);
#   2. the bench `conv_routes` on `paper`'s 18 convolution shapes at batch 32: forward and
#      backward milliseconds of the matrix products and of each kernel in KERNELS, each
#      kernel's differences from the matrix products and how many of its calls fell back to
#      them; it names the fastest kernel that ran (deadline CONV_DEADLINE, default 300 s; the
#      rows print as they are measured, the totals at the end);
#   3. ab.sh: `paper` A B A B and the heads, A = `DAAM_CONV=gemm`, B = `DAAM_CONV=implicit
#      DAAM_IMPLICIT=<the fastest kernel>` (or the default kernel if step 2 named none);
#   4. profile.sh on route B when the call is less than PROFILE_BEFORE (default 420) seconds in.
# Carry .gpudata/vqvae-fixed.xz, .gpudata/train_step-fixed.xz, .gpudata/conv_routes-fixed.xz
# (`bash tools/gpu/build.sh`) and .gpudata/kc.tgz when a call before returned one.
# Returns implicit-results.tgz, ab-results.tgz, profile-results.tgz and kc.tgz; timeout_s ~560.
set -u
source tools/gpu/common.sh
PACK=implicit-results
export NO_COLOR=1
require_bin vqvae-fixed train_step-fixed conv_routes-fixed
carried_kernel_cache
heads=${HEADS:-daam-v1,mixture,mha}
kernels=${KERNELS:-simple_sync_cyclic:cmma,simple_async_cyclic:mma,simple_async_tma:mma}

# `partial_best FILE`: from conv_routes' markdown rows (`| name (×count) | shape | kernel | gemm
# fwd | implicit fwd | gemm bwd | implicit bwd | ...`), the kernel whose implicit forward and
# backward ×count sum least, among the kernels with the most rows.
partial_best() {
    awk -F'|' '$4 ~ /:/ && $6 ~ /[0-9]/ {
        k = $4; gsub(/ /, "", k)
        count = $2; sub(/.*\(×/, "", count); sub(/\).*/, "", count)
        total[k] += ($6 + $8) * count; rows[k]++
    }
    END {
        for (k in rows) if (rows[k] > most) most = rows[k]
        for (k in rows) if (rows[k] == most && (best == "" || total[k] < total[best])) best = k
        print best
    }' "$1"
}

torch_baselines "$heads"

stamp "conv_routes --preset paper --kernels $kernels (deadline ${CONV_DEADLINE:-300} s)"
deadline "${CONV_DEADLINE:-300}" "$BIN/conv_routes-fixed" --device cuda --preset paper \
    --kernels "$kernels" --warmup 1 --iters 5 >"$OUT/conv-routes.md" 2>"$OUT/conv-routes.err"
cat "$OUT/conv-routes.md"
head -c 2000 "$OUT/conv-routes.err"
pack
save_cache
best=$(sed -n 's/^fastest implicit kernel: \([a-z_]*:[a-z]*\) .*/\1/p' "$OUT/conv-routes.md")
if [ -z "$best" ] && ! grep -q '^fastest implicit kernel: none' "$OUT/conv-routes.md"; then
    # Stopped before its totals: the kernel with the least implicit time ×count over the rows
    # measured, among the kernels with the most rows.
    best=$(partial_best "$OUT/conv-routes.md")
    stamp "conv_routes ended early; from its rows: ${best:-none}"
fi
best=${best:-simple_sync_cyclic:cmma}

stamp "ab.sh: A gemm, B implicit $best"
OUT=$FINAL HEADS=$heads HEADS_DEADLINE=${HEADS_DEADLINE:-60} ENV_A="DAAM_CONV=gemm" \
    ENV_B="DAAM_CONV=implicit DAAM_IMPLICIT=$best" bash tools/gpu/ab.sh
if [ $(( $(date +%s) - t0 )) -lt "${PROFILE_BEFORE:-420}" ]; then
    stamp "profile.sh, implicit $best"
    OUT=$FINAL DAAM_CONV=implicit DAAM_IMPLICIT=$best bash tools/gpu/profile.sh
    save_cache
else
    stamp "no time left for profile.sh"
fi
stamp done
