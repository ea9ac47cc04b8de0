#!/bin/bash
# A time-boxed GPU pass (about 9 minutes) for when the device budget is short: each burn CUDA
# program runs under a deadline because cubecl compiles (NVRTC) and autotunes every new kernel
# shape on its first steps; the steady-state rate is read after that warm-up.
# DAT heads (train_step bench vs bench_classify_torch.py), vqvae `small` (train on the
# procedural images vs vqvae_torch.py) and BEiT-Large f32 extraction (extract bench vs
# bench_encoders_torch.py), each Rust program beside PyTorch on the same card.
set -u
source tools/gpu/common.sh
t0=$(date +%s)
stamp() { echo "[t=$(( $(date +%s) - t0 ))s] $*"; }

stamp "DAT heads, torch"
python3 tools/bench_classify_torch.py --device cuda --warmup 5 --iters 30 | tee "$OUT/heads-torch.jsonl"
stamp "DAT heads, burn (deadline 150 s)"
deadline 150 "$BIN/train_step" --device cuda --warmup 5 --iters 30 | tee "$OUT/heads-rust.jsonl"

stamp "vqvae, torch"
for preset in small paper; do
    peak_gpu "$OUT/vqvae-torch-$preset.log" python3 tools/vqvae_torch.py --preset $preset --device cuda --steps 30 --warmup 10
    echo "$(head -1 "$OUT/vqvae-torch-$preset.log") $(tail -1 "$OUT/vqvae-torch-$preset.log")"
done
stamp "vqvae small, burn (Ctrl-C at 170 s)"
peak_gpu "$OUT/vqvae-rust-small.log" deadline 170 "$BIN/vqvae" train --preset small --device cuda \
    --max-steps 100000 --out /tmp/vq-small
cp /tmp/vq-small/metrics.csv "$OUT/vqvae-rust-small-metrics.csv"
python3 - /tmp/vq-small/metrics.csv <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"burn small: {len(rows)} steps logged")
if len(rows) > 20:
    tail = rows[len(rows) // 2:]
    print(f"burn small images_per_s (median of the last {len(tail)} steps) = "
          f"{statistics.median(float(r['images_per_second']) for r in tail):.1f}")
PY
tail -1 "$OUT/vqvae-rust-small.log"

stamp "BEiT-Large f32 extraction"
python3 tools/bench_encoders_torch.py --model beit --save /tmp/enc --no-bench --threads 16 >"$OUT/beit-save.log" 2>&1 || tail "$OUT/beit-save.log"
peak_gpu "$OUT/beit-torch.log" python3 tools/bench_encoders_torch.py --model beit --load /tmp/enc \
    --device cuda --dtype f32 --batch 32 --warmup 2 --iters 10 --threads 16 --reference /tmp/ref.safetensors
echo "torch $(grep '^{' "$OUT/beit-torch.log") $(tail -1 "$OUT/beit-torch.log")"
grep -q '^{' "$OUT/beit-torch.log" || tail -5 "$OUT/beit-torch.log"
stamp "BEiT burn (deadline 100 s)"
peak_gpu "$OUT/beit-rust.log" deadline 100 "$BIN/extract" --model beit --dir /tmp/enc/beit-large \
    --device cuda --precision f32 --batch 32 --warmup 2 --iters 10 --reference /tmp/ref-beit.safetensors
echo "burn $(grep '^{' "$OUT/beit-rust.log") $(tail -1 "$OUT/beit-rust.log")"
grep -q '^{' "$OUT/beit-rust.log" || tail -5 "$OUT/beit-rust.log"
stamp done
(cd /tmp && tar czf "$FINAL/short-results.tgz" results)
