#!/bin/bash
# Session 11's second call (~6 minutes, timeout_s ~360), after `first_step.sh` showed the
# no-autotune build far behind PyTorch (paper 12.2 s/step against 0.23 s): burn-cubecl without
# `autotune` runs every convolution as a direct convolution and every matmul through one fixed
# kernel. Needs .gpudata/{vqvae,train_step}-{fixed,autotune}.xz (`bash tools/gpu/build.sh` and
# `bash tools/gpu/build.sh autotune`) and first_step.sh's kernel cache at .gpudata/kc.tgz.
#   1. per-kernel GPU times (cubecl's profiling log) of 5 steps of the `fixed` DAT heads mha and
#      daam-v1: where the time goes
#   2. the `autotune` build (what `--features cuda` gives users): DAT heads (deadline 60 s),
#      then vqvae paper with the rest (deadline 215 s), phase timings on
set -u
source tools/gpu/common.sh
PACK=autotune-results
export NO_COLOR=1
carried_kernel_cache
while sleep 20; do pack; done &
packer=$!

profiled() {
    printf '[compilation]\ncache = { file = "/tmp/kc" }\n\n[autotune]\ncache = { file = "/tmp/kc" }\n\n[profiling]\nlogger = { file = "%s", level = "basic" }\n' "$1" >cubecl.toml
}
stamp "profile: fixed heads mha, daam-v1"
profiled "$OUT/profile-heads.log"
deadline 25 "$BIN/train_step-fixed" --device cuda --heads mha,daam-v1 --warmup 2 --iters 3 >"$OUT/profile-heads.out" 2>&1
cut -c1-120 "$OUT/profile-heads.out"
rm -f cubecl.toml
wc -l "$OUT"/profile-*.log
pack

stamp "autotune DAT heads (deadline 60 s)"
deadline 60 "$BIN/train_step-autotune" --device cuda --warmup 5 --iters 30 2>"$OUT/heads-autotune.err" | tee "$OUT/heads-autotune.jsonl"
tail -2 "$OUT/heads-autotune.err"
pack

export RUST_LOG=vqvae::train=debug
train paper-autotune vqvae-autotune paper 215
grep -m 8 -E 'done in|phases' "$OUT/paper-autotune.log"
grep 'phases' "$OUT/paper-autotune.log" | tail -2
kill "$packer" 2>/dev/null
stamp done
pack
