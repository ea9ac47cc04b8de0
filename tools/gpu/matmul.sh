#!/bin/bash
# The encoders' linear-layer products by cubek's tiled-matmul strategies (`DAAM_MATMUL`,
# session 22: `daam::tiled_matmul`, a custom fusion op per product) against burn's product (the
# `Auto` strategy of the build without autotune), on one card in one call:
#   1. the bench `matmul_routes`: BEiT-Large (64 images) and WavLM-Large (16 clips) in f32,
#      Llama-2-13B (4 × 128 tokens) in f16, each linear shape's ms and TFLOPS for burn's
#      product (2-D, and 3-D as burn's `Linear` runs it, the encoders' route without a strategy)
#      and each strategy in STRATEGIES, the strategies' differences and fallbacks, the products'
#      time per forward and the fastest strategy per model (deadline MATMUL_DEADLINE, default
#      200 s; rows print as they are measured);
#   2. unless ENCODERS=0: the extraction bench of encoders.sh (random real-size checkpoints,
#      transformers 4.46.3 from .gpudata/wheels beside it) for BEiT-Large and WavLM-Large, burn
#      without a strategy and with BEiT's fastest (~4 minutes).
# Carry .gpudata/matmul_routes-fixed.xz and, with ENCODERS=1, .gpudata/extract-fixed.xz and
# .gpudata/wheels (`bash tools/gpu/wheels.sh`). timeout_s ~480 (~220 with ENCODERS=0).
# Returns matmul-results.tgz (and kc.tgz).
set -u
source tools/gpu/common.sh
PACK=matmul-results
export NO_COLOR=1
require_bin matmul_routes-fixed
carried_kernel_cache
strategies=${STRATEGIES:-simple_cyclic_cmma,simple_tma_cmma,double_tma_cmma,specialized_tma_cmma,double_cyclic_cmma,specialized_cyclic_cmma}

stamp "matmul_routes --strategies $strategies (deadline ${MATMUL_DEADLINE:-200} s)"
deadline "${MATMUL_DEADLINE:-200}" "$BIN/matmul_routes-fixed" --device cuda \
    --strategies "$strategies" --warmup 2 --iters 10 >"$OUT/matmul-routes.md" 2>"$OUT/matmul-routes.err"
cat "$OUT/matmul-routes.md"
head -c 2000 "$OUT/matmul-routes.err"
pack
save_cache
best=$(sed -n 's/^BEiT-Large: fastest strategy: \([a-z_]*\) .*/\1/p' "$OUT/matmul-routes.md")
[ "$best" != none ] || best=  # "none (every call fell back)"
if [ "${ENCODERS:-1}" = 0 ]; then
    stamp done
    exit 0
fi
[ -n "$best" ] || { stamp "no fastest strategy for BEiT-Large: the extraction runs are skipped"; exit 0; }

require_bin extract-fixed
legacy_transformers || exit 1
stamp "random real-size checkpoints"
python3 tools/bench_encoders_torch.py --model both --save /tmp/enc --no-bench --threads 16 >"$OUT/save.log" 2>&1 || tail -5 "$OUT/save.log"
declare -A DIR=([beit]=beit-large [wavlm]=wavlm-large) BATCH=([beit]=64 [wavlm]=16)
for model in beit wavlm; do
    stamp "$model f32, batch ${BATCH[$model]}: transformers"
    python3 tools/bench_encoders_torch.py --model $model --load /tmp/enc --device cuda --dtype f32 \
        --batch ${BATCH[$model]} --warmup 2 --iters 10 --threads 16 \
        --reference /tmp/ref.safetensors >"$OUT/torch-$model.log" 2>&1
    echo "torch $(grep '^{' "$OUT/torch-$model.log" | cut -c1-200)"
    for strategy in "" "$best"; do
        stamp "$model: burn, DAAM_MATMUL=${strategy:-unset}"
        log="$OUT/rust-$model-${strategy:-burn}.log"
        (
            [ -z "$strategy" ] || export DAAM_MATMUL=$strategy
            deadline 100 "$BIN/extract-fixed" --model $model --dir /tmp/enc/${DIR[$model]} \
                --device cuda --precision f32 --batch ${BATCH[$model]} --warmup 2 --iters 10 \
                --reference /tmp/ref-$model.safetensors >"$log" 2>&1
        )
        echo "burn $(grep '^{' "$log" | cut -c1-250)"
        grep -q '^{' "$log" || tail -8 "$log"
    done
    pack
done
save_cache
stamp done
pack
