#!/bin/bash
# Issues #4 and #5 on a GPU: (1) one DAT training step per head, burn CUDA (bench `train_step`)
# beside PyTorch CUDA (tools/bench_classify_torch.py); (2) extraction forward of random
# real-size BEiT-Large and WavLM-Large (bench `extract`, f32 and f16) beside transformers on the
# same card, with the pooled features checked against PyTorch's f32 output; (3) `classify
# extract --device cuda` (f32, f16) on a generated CIFAR-100 binary set, its store compared row
# by row with the CPU one, and its end-to-end items/s.
# Usage (device machine, repo root): bash tools/gpu/classify.sh   (results under $OUT)
set -u
source tools/gpu/common.sh
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

echo "== DAT heads: one training step, batch 32 x 24 layers x 1024"
deadline 200 "$BIN/train_step" --device cuda --warmup 5 --iters 50 | tee "$OUT/heads-rust.jsonl"
python3 tools/bench_classify_torch.py --device cuda --warmup 5 --iters 50 | tee "$OUT/heads-torch.jsonl"

echo "== encoders: random real-size checkpoints"
python3 tools/bench_encoders_torch.py --model both --save /tmp/enc --no-bench --threads 16
declare -A DIR=([beit]=beit-large [wavlm]=wavlm-large) BATCH=([beit]=64 [wavlm]=16)
for model in beit wavlm; do
    for p in f32 f16; do
        ref=(); [ $p = f32 ] && ref=(--reference /tmp/ref.safetensors)
        peak_gpu "$OUT/torch-$model-$p.log" python3 tools/bench_encoders_torch.py --model $model \
            --load /tmp/enc --device cuda --dtype $p --batch ${BATCH[$model]} --warmup 2 --iters 10 \
            --threads 16 "${ref[@]}"
        echo "torch $(grep '^{' "$OUT/torch-$model-$p.log") $(tail -1 "$OUT/torch-$model-$p.log")"
        peak_gpu "$OUT/rust-$model-$p.log" deadline 150 "$BIN/extract" --model $model --dir /tmp/enc/${DIR[$model]} \
            --device cuda --precision $p --batch ${BATCH[$model]} --warmup 2 --iters 10 \
            --reference /tmp/ref-$model.safetensors
        echo "rust  $(grep '^{' "$OUT/rust-$model-$p.log") $(tail -1 "$OUT/rust-$model-$p.log")"
        grep -q '^{' "$OUT/rust-$model-$p.log" || tail -15 "$OUT/rust-$model-$p.log"
    done
done

echo "== classify extract --device cuda on a generated CIFAR-100 binary set"
python3 - <<'PY'
import numpy as np, os
d = "/tmp/cifar"; os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(0)
n = 512
rec = np.zeros((n, 3074), np.uint8)
rec[:, 0] = rng.integers(0, 20, n); rec[:, 1] = rng.integers(0, 100, n)
rec[:, 2:] = rng.integers(0, 256, (n, 3072))
rec.tofile(f"{d}/train.bin"); rec[:64].tofile(f"{d}/test.bin")
open(f"{d}/fine_label_names.txt", "w").write("".join(f"class{i}\n" for i in range(100)))
PY
E=(--encoder beit --weights /tmp/enc/beit-large --task cifar100 --data /tmp/cifar --split train)
"$BIN/classify" extract "${E[@]}" --out /tmp/s-cpu --limit 32 --device cpu --dtype f32 >"$OUT/extract-cpu.log" 2>&1 || tail "$OUT/extract-cpu.log"
for p in f32 f16; do
    start=$(date +%s.%N)
    peak_gpu "$OUT/extract-cuda-$p.log" deadline 200 "$BIN/classify" extract "${E[@]}" --out /tmp/s-cuda-$p \
        --device cuda --precision $p --dtype f32 --batch-size 64 || tail "$OUT/extract-cuda-$p.log"
    end=$(date +%s.%N)
    echo "classify extract cuda $p: 512 images in $(python3 -c "print(f'{$end-$start:.1f}')") s (process wall, load included) $(tail -1 "$OUT/extract-cuda-$p.log")"
done
python3 - <<'PY'
import glob, numpy as np
from safetensors.numpy import load_file
def rows(d):
    return np.concatenate([load_file(f)["features"].astype(np.float64) for f in sorted(glob.glob(d + "/train/shard-*.safetensors"))])
cpu = rows("/tmp/s-cpu")
for p in ["f32", "f16"]:
    g = rows(f"/tmp/s-cuda-{p}")[: len(cpu)]
    print(f"store cuda-{p} vs cpu ({len(cpu)} rows): max|diff|/max|cpu| = {np.abs(g - cpu).max() / np.abs(cpu).max():.3e}")
PY
(cd /tmp && tar czf "$FINAL/classify-results.tgz" results)
ls -la "$FINAL"
