#!/bin/bash
# Issue #5 on a GPU, sized for a second call after first_step.sh (~5 minutes, timeout_s ~330):
# extraction forward (every hidden state + per-layer mean pooling) of random real-size
# BEiT-Large and WavLM-Large, f32, bench `extract` of the no-autotune build beside transformers
# on the same card, the pooled features checked against PyTorch's (`--reference`).
# Needs .gpudata/extract-fixed.xz (`bash tools/gpu/build.sh` builds it with the others).
# BACKEND_BEFORE=SECONDS skips that last run when the call has run that long.
# A longer version with f16 and `classify extract` end to end: tools/gpu/classify.sh.
set -u
source tools/gpu/common.sh
PACK=encoders-results
export NO_COLOR=1
carried_kernel_cache
require_bin extract-fixed
legacy_transformers || exit 1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

stamp "random real-size checkpoints"
python3 tools/bench_encoders_torch.py --model both --save /tmp/enc --no-bench --threads 16 >"$OUT/save.log" 2>&1 || tail -5 "$OUT/save.log"
declare -A DIR=([beit]=beit-large [wavlm]=wavlm-large) BATCH=([beit]=64 [wavlm]=16)
for model in beit wavlm; do
    stamp "$model f32, batch ${BATCH[$model]}"
    peak_gpu "$OUT/torch-$model.log" python3 tools/bench_encoders_torch.py --model $model \
        --load /tmp/enc --device cuda --dtype f32 --batch ${BATCH[$model]} --warmup 2 --iters 10 \
        --threads 16 --reference /tmp/ref.safetensors  # writes /tmp/ref-$model.safetensors
    echo "torch $(grep '^{' "$OUT/torch-$model.log" | cut -c1-200) $(tail -1 "$OUT/torch-$model.log")"
    peak_gpu "$OUT/rust-$model.log" deadline 100 "$BIN/extract-fixed" --model $model \
        --dir /tmp/enc/${DIR[$model]} --device cuda --precision f32 --batch ${BATCH[$model]} \
        --warmup 2 --iters 10 --reference /tmp/ref-$model.safetensors
    echo "burn  $(grep '^{' "$OUT/rust-$model.log" | cut -c1-250) $(tail -1 "$OUT/rust-$model.log")"
    grep -q '^{' "$OUT/rust-$model.log" || tail -8 "$OUT/rust-$model.log"
    pack
done
# WavLM's 1-D convolutions take matrix products in this build (encoders::conv1d, session 13);
# the same forward with burn's direct `conv1d` for the before/after on the same card.
if [ $(( $(date +%s) - t0 )) -lt "${BACKEND_BEFORE:-100000}" ]; then
    stamp "wavlm f32, batch ${BATCH[wavlm]}, DAAM_CONV=backend (burn's conv1d)"
    DAAM_CONV=backend peak_gpu "$OUT/rust-wavlm-backend.log" deadline 60 "$BIN/extract-fixed" \
        --model wavlm --dir /tmp/enc/${DIR[wavlm]} --device cuda --precision f32 \
        --batch ${BATCH[wavlm]} --warmup 2 --iters 10 --reference /tmp/ref-wavlm.safetensors
    echo "burn (conv1d) $(grep '^{' "$OUT/rust-wavlm-backend.log" | cut -c1-250) $(tail -1 "$OUT/rust-wavlm-backend.log")"
else
    stamp "no time left for WavLM with DAAM_CONV=backend"
fi
save_cache
stamp done
pack
