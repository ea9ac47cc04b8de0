#!/bin/bash
# How long a fresh machine takes to its first burn CUDA training step, and the rate after it,
# with the builds without cubecl's autotune and our kernel cache (NOTES.md, session 8: the
# warm-up is kernel compilation, ~1.5 kernels/s, longer than 100 s for `vqvae train --preset
# small` with autotune). One call, about 9.5 minutes (timeout_s 590), on an H200 (the `paper`
# preset's memory is unknown; PyTorch takes 30 GB of it, an earlier autotune build 107 GB):
#   PyTorch `small`, `paper` and the DAT heads (the baselines on the same card, ~60 s)
#   vqvae-fixed paper, cold (Ctrl-C at 280 s): issue #3's CUDA figure; pays the compilation
#   vqvae-fixed small (Ctrl-C at 60 s), on the kernel cache paper left
#   train_step-fixed, the DAT heads (deadline 75 s), then three heads in bf16 (deadline 40 s)
#   if under 500 s have passed: two heads with DAAM_CONV=backend (burn's direct convolutions)
# A shorter call (a 15-minute session with encoders.sh after it): PAPER_SECONDS, PAPER_STEPS,
# SMALL_STEPS cap the two `vqvae` runs; BF16_BEFORE and BACKEND_BEFORE skip those sections when
# the call has run that many seconds.
# Phase timings are on for both `vqvae` runs (RUST_LOG=vqvae::train=debug: a step that never
# ends shows where it stopped; their syncs cost little beside a 250-ms `paper` step).
# The cache (DAAM_KERNEL_CACHE=/tmp/kc) comes back as $OUT/kc.tgz; put it at .gpudata/kc.tgz to
# start the next call warm. Binaries (carry .gpudata): `bash tools/gpu/build.sh` here first.
set -u
source tools/gpu/common.sh
require_bin vqvae-fixed train_step-fixed
PACK=first-step-results
export NO_COLOR=1 RUST_LOG=vqvae::train=debug
rm -f cubecl.toml
carried_kernel_cache
while sleep 15; do
    echo "[t=$(($(date +%s) - t0))s] cache: $(find /tmp/kc -type f | wc -l) files, $(du -sk /tmp/kc | cut -f1) KiB"
done >>"$OUT/cache-growth.txt" &
watcher=$!

stamp "PyTorch small, paper and DAT heads"
peak_gpu "$OUT/torch-small.log" python3 tools/vqvae_torch.py --preset small --device cuda --steps 30 --warmup 10
echo "$(grep '^torch' "$OUT/torch-small.log") $(tail -1 "$OUT/torch-small.log")"
peak_gpu "$OUT/torch-paper.log" python3 tools/vqvae_torch.py --preset paper --device cuda --steps 10 --warmup 3
echo "$(grep '^torch' "$OUT/torch-paper.log") $(tail -1 "$OUT/torch-paper.log")"
python3 tools/bench_classify_torch.py --device cuda --warmup 5 --iters 30 >"$OUT/heads-torch.jsonl"
cut -c1-90 "$OUT/heads-torch.jsonl"
pack

train paper vqvae-fixed paper "${PAPER_SECONDS:-280}" "${PAPER_STEPS:-100000}"
grep -m 8 -E 'done in|phases' "$OUT/paper.log"
grep 'phases' "$OUT/paper.log" | tail -2
save_cache
tail -2 "$OUT/cache-growth.txt"

train small vqvae-fixed small 60 "${SMALL_STEPS:-100000}"
grep -m 8 -E 'done in|phases' "$OUT/small.log"
grep 'phases' "$OUT/small.log" | tail -2
save_cache

stamp "DAT heads without autotune (deadline 75 s)"
deadline 75 "$BIN/train_step-fixed" --device cuda --warmup 5 --iters 30 2>"$OUT/heads.err" | tee "$OUT/heads-rust.jsonl"
tail -2 "$OUT/heads.err"
pack
save_cache

# Mixed precision (classify --precision bf16): the kernels of the f32 heads are warm by now.
if [ $(( $(date +%s) - t0 )) -lt "${BF16_BEFORE:-100000}" ]; then
    stamp "DAT heads, bf16 mixed precision (PyTorch autocast beside; deadline 40 s)"
    python3 tools/bench_classify_torch.py --device cuda --precision bf16 --heads daam-v1,daam-v2,mha \
        --warmup 5 --iters 30 >"$OUT/heads-torch-bf16.jsonl"
    cut -c1-110 "$OUT/heads-torch-bf16.jsonl"
    deadline 40 "$BIN/train_step-fixed" --device cuda --precision bf16 --heads daam-v1,daam-v2,mha \
        --warmup 5 --iters 30 2>"$OUT/heads-bf16.err" | tee "$OUT/heads-rust-bf16.jsonl"
    tail -2 "$OUT/heads-bf16.err"
    pack
else
    stamp "no time left for the bf16 heads"
fi

# Same card, other route: burn's direct convolutions (DAAM_CONV=backend, session 11's path) for
# two heads, only when the call has time left (timeout_s 590: this needs ~45 s).
if [ $(( $(date +%s) - t0 )) -lt "${BACKEND_BEFORE:-500}" ]; then
    stamp "DAT heads with burn's convolution (DAAM_CONV=backend; deadline 40 s)"
    DAAM_CONV=backend deadline 40 "$BIN/train_step-fixed" --device cuda --heads daam-v1,mha \
        --warmup 3 --iters 20 2>"$OUT/heads-backend.err" | tee "$OUT/heads-rust-backend.jsonl"
    tail -2 "$OUT/heads-backend.err"
    pack
else
    stamp "no time left for the DAAM_CONV=backend heads"
fi

kill "$watcher" 2>/dev/null
tail -3 "$OUT/cache-growth.txt"
save_cache
stamp done
pack
