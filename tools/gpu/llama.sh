#!/bin/bash
# Issue #5's last GPU figure: Llama-2-13B at real size (random weights of its shape, f16), the
# extraction forward (every hidden state + per-layer mean pooling), burn CUDA beside
# transformers on the same card. Sized for a device call of its own (~6 minutes by estimate,
# never run; timeout_s ~450; first_step.sh and encoders.sh fill a session's 15 minutes):
# transformers builds the
# 13 B parameters on the card in f16, writes them with `save_pretrained` (26 GB of safetensors
# shards with an index) to /tmp/enc/llama-2-13b and times its forward; then the bench
# `extract-fixed --model llama --precision f16` loads those shards (kept in f16 on the card) and
# times its own. Batch 4 × 128 tokens, the ids both sides draw (`3 + 7919 i mod 31997`).
# Needs .gpudata/extract-fixed.xz (`bash tools/gpu/build.sh`).
set -u
source tools/gpu/common.sh
PACK=llama-results
export NO_COLOR=1
carried_kernel_cache
require_bin extract-fixed
legacy_transformers || exit 1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
df -h /tmp | tail -1

stamp "transformers: Llama-2-13B f16 built on the card, saved, timed"
peak_gpu "$OUT/torch-llama.log" python3 tools/bench_encoders_torch.py --model llama --device cuda \
    --dtype f16 --save /tmp/enc --batch 4 --tokens 128 --warmup 2 --iters 10 --threads 16
echo "torch $(grep '^{' "$OUT/torch-llama.log" | cut -c1-300) $(tail -1 "$OUT/torch-llama.log")"
grep -q '^{' "$OUT/torch-llama.log" || tail -8 "$OUT/torch-llama.log"
du -sh /tmp/enc/llama-2-13b
pack

stamp "burn: extract-fixed, f16 (deadline 300 s, loading the 26 GB included)"
peak_gpu "$OUT/rust-llama.log" deadline 300 "$BIN/extract-fixed" --model llama \
    --dir /tmp/enc/llama-2-13b --device cuda --precision f16 --batch 4 --tokens 128 \
    --warmup 2 --iters 10
echo "burn  $(grep '^{' "$OUT/rust-llama.log" | cut -c1-300) $(tail -1 "$OUT/rust-llama.log")"
grep -q '^{' "$OUT/rust-llama.log" || tail -8 "$OUT/rust-llama.log"
save_cache
stamp done
pack
