#!/bin/bash
# The short GPU pass, for a 15-minute device budget: each burn CUDA program beside PyTorch on the
# same card, under a deadline, the results packed into $OUT/short-results.tgz after each program
# (so a call cut off by its limit still brings back what finished). Sections, in one call or
# spread over two (the machine stays warm only ~30 s between calls):
#   vqvae    `vqvae train` small (Ctrl-C at 100 s) and paper (at 150 s; skipped when small
#            finished no step), vqvae_torch.py small and paper (30 steps after 10)   ~5.5 min
#   heads    the `train_step` bench (deadline 120 s) and bench_classify_torch.py      ~2.5 min
#   extract  BEiT-Large f32 and f16 forwards, bench `extract` (deadline 100 s each) and
#            bench_encoders_torch.py, pooled features checked against PyTorch's f32   ~5 min
# Usage (device machine, repo root, carry .gpudata): bash tools/gpu/short.sh [vqvae] [heads] [extract]
# Binaries: .gpudata/{vqvae,train_step,extract}.xz, stripped `--release --features cuda` builds
# packed with `xz -6` (the bench binaries are target/release/deps/{train_step,extract}-HASH).
set -u
source tools/gpu/common.sh
PACK=short-results
sections=" ${*:-vqvae heads extract} "

if [[ $sections == *" vqvae "* ]]; then
    stamp "vqvae, PyTorch"
    for preset in small paper; do
        peak_gpu "$OUT/torch-$preset.log" python3 tools/vqvae_torch.py --preset $preset --device cuda --steps 30 --warmup 10
        echo "$(grep '^torch' "$OUT/torch-$preset.log" || tail -3 "$OUT/torch-$preset.log") $(tail -1 "$OUT/torch-$preset.log")"
    done
    pack
    kernel_cache /tmp/kc
    train burn-small vqvae small 100
    if [ -s /tmp/burn-small/metrics.csv ]; then
        train burn-paper vqvae paper 150
    else
        stamp "burn-paper: skipped (small finished no step); threads of a tiny run:"
        "$BIN/vqvae" train --preset tiny --device cuda --max-steps 3 --out /tmp/tiny >"$OUT/tiny.log" 2>&1 &
        sleep 40
        for t in /proc/$!/task/*; do echo "$(cat "$t/comm") $(awk '{print $3}' "$t/stat") $(cat "$t/wchan" 2>/dev/null)"; done | sort | uniq -c | tee "$OUT/tiny-threads.txt"
        kill -9 $! 2>/dev/null
        pack
    fi
fi

if [[ $sections == *" heads "* ]]; then
    stamp "DAT heads, burn (deadline 120 s)"
    deadline 120 "$BIN/train_step" --device cuda --warmup 5 --iters 30 2>"$OUT/heads-rust.err" | tee "$OUT/heads-rust.jsonl"
    tail -3 "$OUT/heads-rust.err"
    pack
    stamp "DAT heads, PyTorch"
    python3 tools/bench_classify_torch.py --device cuda --warmup 5 --iters 30 | tee "$OUT/heads-torch.jsonl"
    pack
fi

if [[ $sections == *" extract "* ]]; then
    stamp "BEiT-Large: random real-size checkpoint"
    python3 tools/bench_encoders_torch.py --model beit --save /tmp/enc --no-bench --threads 16 >"$OUT/beit-save.log" 2>&1 || tail "$OUT/beit-save.log"
    for p in f32 f16; do
        ref=(); [ $p = f32 ] && ref=(--reference /tmp/ref.safetensors)
        stamp "BEiT $p, PyTorch"
        peak_gpu "$OUT/beit-torch-$p.log" python3 tools/bench_encoders_torch.py --model beit --load /tmp/enc \
            --device cuda --dtype $p --batch 32 --warmup 2 --iters 10 --threads 16 "${ref[@]}"
        echo "torch $(grep '^{' "$OUT/beit-torch-$p.log") $(tail -1 "$OUT/beit-torch-$p.log")"
        grep -q '^{' "$OUT/beit-torch-$p.log" || tail -5 "$OUT/beit-torch-$p.log"
        stamp "BEiT $p, burn (deadline 100 s)"
        peak_gpu "$OUT/beit-rust-$p.log" deadline 100 "$BIN/extract" --model beit --dir /tmp/enc/beit-large \
            --device cuda --precision $p --batch 32 --warmup 2 --iters 10 --reference /tmp/ref-beit.safetensors
        echo "burn $(grep '^{' "$OUT/beit-rust-$p.log") $(tail -1 "$OUT/beit-rust-$p.log")"
        grep -q '^{' "$OUT/beit-rust-$p.log" || tail -5 "$OUT/beit-rust-$p.log"
        pack
    done
fi
stamp done
pack
