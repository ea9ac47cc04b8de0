#!/bin/bash
# A time-boxed GPU pass (about 9 minutes) on the first-step problem of NOTES.md: burn's CUDA
# backend compiles (NVRTC) and autotunes every new kernel shape on its first steps.
# Compares, on the `vqvae` training loop:
#   - `vqvae-fixed`: built with `--no-default-features --features cuda` (no cubecl autotune: one
#     kernel per op and shape), cold and then again with its PTX cache warm;
#   - `vqvae`: the default `--features cuda` build (autotune on), cold, with its own caches;
# and PyTorch on the same card. Time to the first step is read from step 1's images/s in
# metrics.csv (batch / images_per_second: step 1 holds the compilation), the steady state from
# the median of the later steps.
#
# The binaries, built here and packed before the call (carry `.gpudata`):
#   cargo build --release -p vqvae --no-default-features --features cuda
#   strip -o /tmp/vf target/release/vqvae && xz -6 -c /tmp/vf >.gpudata/vqvae-fixed.xz
#   cargo build --release -p vqvae --features cuda
#   strip -o /tmp/va target/release/vqvae && xz -6 -c /tmp/va >.gpudata/vqvae.xz
set -u
source tools/gpu/common.sh
t0=$(date +%s)
stamp() { echo "[t=$(( $(date +%s) - t0 ))s] $*"; }

# `summary NAME RUNDIR`: steps, time of step 1, median images/s after the first third.
summary() {
    cp "$2/metrics.csv" "$OUT/$1-metrics.csv" 2>/dev/null
    python3 - "$2/metrics.csv" "$1" "$(grep -o '"batch_size": *[0-9]*' "$2/config.json" 2>/dev/null | grep -o '[0-9]*$')" <<'PY'
import csv, statistics, sys
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
except OSError:
    rows = []
name, batch = sys.argv[2], sys.argv[3]
if not rows:
    print(f"{name}: no step finished")
    sys.exit()
first = f"{float(batch) / float(rows[0]['images_per_second']):.1f} s" if batch else "?"
line = f"{name}: {len(rows)} steps; step 1 took {first}"
if len(rows) >= 6:
    tail = rows[len(rows) // 3:]
    ips = statistics.median(float(r['images_per_second']) for r in tail)
    line += f"; median images/s of steps {len(rows) - len(tail) + 1}-{len(rows)} = {ips:.1f}"
    if batch:
        line += f" ({1000 * float(batch) / ips:.1f} ms/step)"
print(line)
PY
}

# `train NAME BINARY PRESET SECONDS`: a training run Ctrl-C'd at SECONDS (killed 10 s later).
train() {
    local name=$1 bin=$2 preset=$3 seconds=$4
    [ -x "$BIN/$bin" ] || { stamp "$name: skipped, no .gpudata/$bin.xz"; return; }
    stamp "$name: $bin --preset $preset, deadline $seconds s"
    rm -rf "/tmp/$name"
    DEADLINE_GRACE=10 peak_gpu "$OUT/$name.log" deadline "$seconds" "$BIN/$bin" train --preset "$preset" \
        --device cuda --max-steps 100000 --out "/tmp/$name"
    summary "$name" "/tmp/$name"
    tail -1 "$OUT/$name.log"
    pack
}

# The results so far into $FINAL (so a call cut off by its limit still brings them back).
pack() { (cd /tmp && tar czf "$FINAL/warmup-results.tgz" results); }

stamp "PyTorch"
for preset in small paper; do
    peak_gpu "$OUT/torch-$preset.log" python3 tools/vqvae_torch.py --preset $preset --device cuda --steps 30 --warmup 10
    grep '^torch' "$OUT/torch-$preset.log" || tail -3 "$OUT/torch-$preset.log"
done
pack

kernel_cache /tmp/kc-fixed
train fixed-small-cold vqvae-fixed small 150
train fixed-small-warm vqvae-fixed small 45
ls -la /tmp/kc-fixed | head; du -sh /tmp/kc-fixed
train fixed-paper vqvae-fixed paper 150

kernel_cache /tmp/kc-autotune
train autotune-small-cold vqvae small 90

stamp done
pack
