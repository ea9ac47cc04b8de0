# Helpers for the GPU scripts in tools/gpu/ (sourced). They run on a lent GPU machine from the
# repo root, with the `--features cuda` binaries in .gpudata/bin and results written to $OUT.

BIN=${BIN:-.gpudata/bin}

# Results: the device tool returns at most 8 files from $OUT, so the scripts gather their logs
# in /tmp/results ($OUT from here on) and pack them into one file in $FINAL at the end.
FINAL=${OUT:-/tmp/out}
OUT=/tmp/results
mkdir -p "$OUT" "$FINAL"
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# `peak_gpu LOG CMD...`: runs CMD with stdout+stderr to LOG and polls nvidia-smi every 0.2 s;
# appends `peak_gpu_mib=N` (the card's used memory at its highest, the CUDA context included)
# to LOG and returns CMD's status.
peak_gpu() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    local pid=$! peak=0 used
    while kill -0 "$pid" 2>/dev/null; do
        used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        [ "${used:-0}" -gt "$peak" ] && peak=$used
        sleep 0.2
    done
    wait "$pid"
    local rc=$?
    echo "peak_gpu_mib=$peak" >>"$log"
    return $rc
}

# `median_column CSV COLUMN SKIP`: median of a metrics.csv column after SKIP data rows.
median_column() {
    python3 - "$1" "$2" "$3" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[int(sys.argv[3]):]
print(f"{statistics.median(float(r[sys.argv[2]]) for r in rows):.2f}")
PY
}

# The binaries travel xz-compressed (.gpudata/NAME.xz: the carry limit is 64 MiB in all).
mkdir -p "$BIN"
for packed in .gpudata/*.xz; do
    [ -e "$packed" ] || continue
    name=$(basename "$packed" .xz)
    [ -x "$BIN/$name" ] || { python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$packed" >"$BIN/$name" && chmod +x "$BIN/$name"; }
done

# `require_bin NAME...`: stop at once, naming build.sh, when a binary did not travel.
require_bin() {
    local name
    for name in "$@"; do
        [ -x "$BIN/$name" ] || { echo "$BIN/$name missing: run tools/gpu/build.sh and carry .gpudata" >&2; exit 1; }
    done
}

# `kernel_cache DIR` (or KERNEL_CACHE=DIR): a cubecl.toml in the working directory that keeps
# cubecl's PTX and autotune caches in DIR (PTX files appear there: session 7). Our binaries
# defer to it over DAAM_KERNEL_CACHE. Bring DIR back through $OUT and carry it to start warm.
kernel_cache() {
    mkdir -p "$1"
    printf '[compilation]\ncache = { file = "%s" }\n\n[autotune]\ncache = { file = "%s" }\n' "$1" "$1" >cubecl.toml
}
if [ -n "${KERNEL_CACHE:-}" ]; then kernel_cache "$KERNEL_CACHE"; fi

# `deadline SECONDS CMD...`: Ctrl-C (SIGINT) at SECONDS so a training run saves a checkpoint,
# SIGKILL 30 s later if it is still in its first step (a burn CUDA program compiles kernels
# there for minutes on a fresh machine).
# DEADLINE_GRACE sets those 30 s.
deadline() {
    local seconds=$1
    shift
    timeout -s INT -k "${DEADLINE_GRACE:-30}" "$seconds" "$@"
}

# Timed steps of a pass: `stamp MESSAGE` prints the seconds since common.sh was sourced.
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

# `train NAME BINARY PRESET SECONDS [STEPS]`: a training run Ctrl-C'd at SECONDS (killed 10 s
# later), or ending by itself after STEPS steps (default: no step limit in practice).
train() {
    local name=$1 bin=$2 preset=$3 seconds=$4 steps=${5:-100000}
    [ -x "$BIN/$bin" ] || { stamp "$name: skipped, no .gpudata/$bin.xz"; return; }
    stamp "$name: $bin --preset $preset, deadline $seconds s"
    rm -rf "/tmp/$name"
    DEADLINE_GRACE=10 peak_gpu "$OUT/$name.log" deadline "$seconds" "$BIN/$bin" train --preset "$preset" \
        --device cuda --max-steps "$steps" --out "/tmp/$name"
    summary "$name" "/tmp/$name"
    tail -1 "$OUT/$name.log"
    pack
}

# `pack`: the results so far into $FINAL/$PACK.tgz (so a call cut off by its limit still brings them back).
pack() { (cd /tmp && tar czf "$FINAL/${PACK:-results}.tgz" results); }

# `carried_kernel_cache`: DAAM_KERNEL_CACHE=/tmp/kc, filled from .gpudata/kc.tgz when a call
# carries it; `save_cache` packs /tmp/kc into $FINAL/kc.tgz for the next call.
carried_kernel_cache() {
    export DAAM_KERNEL_CACHE=/tmp/kc
    mkdir -p /tmp/kc
    if [ -f .gpudata/kc.tgz ]; then
        tar xzf .gpudata/kc.tgz -C /tmp/kc
        stamp "kernel cache carried in: $(find /tmp/kc -type f | wc -l) files, $(du -sh /tmp/kc | cut -f1)"
    fi
}
save_cache() { tar czf "$FINAL/kc.tgz" -C /tmp/kc .; }

# `legacy_transformers`: the encoder scripts need transformers 4.x (tools/requirements-encoders.txt
# pins 4.46.3). transformers 5 (the lent machine had 5.17.0 on 2026-11-27) renamed BEiT's modules
# (`layers.N`, `attention.q_proj`, no `encoder`), so its random checkpoints carry names that the
# published checkpoints, and our loaders, do not use. When the machine's transformers is 5 or
# later, the wheels carried in .gpudata/wheels (`bash tools/gpu/wheels.sh` here) are unpacked to
# /tmp/tf4 and put first on PYTHONPATH; the machine's torch stays.
legacy_transformers() {
    local major
    major=$(python3 -c "import transformers; print(transformers.__version__.split('.')[0])" 2>/dev/null)
    [ "${major:-0}" -ge 5 ] || return 0
    if ! ls .gpudata/wheels/transformers-4*.whl >/dev/null 2>&1; then
        echo "transformers $major.x here and no .gpudata/wheels: run tools/gpu/wheels.sh and carry .gpudata" >&2
        return 1
    fi
    if [ ! -d /tmp/tf4/transformers ]; then
        mkdir -p /tmp/tf4
        local wheel
        for wheel in .gpudata/wheels/*.whl; do python3 -m zipfile -e "$wheel" /tmp/tf4; done
    fi
    export PYTHONPATH=/tmp/tf4${PYTHONPATH:+:$PYTHONPATH}
}

# `torch_baselines HEADS`: PyTorch's `paper` VQ-VAE (10 steps after 3, peak GPU memory) and the
# DAT heads HEADS on this card (~40 s), into $OUT/torch-paper.log and $OUT/heads-torch.jsonl.
torch_baselines() {
    stamp "PyTorch paper and DAT heads $1"
    peak_gpu "$OUT/torch-paper.log" python3 tools/vqvae_torch.py --preset paper --device cuda --steps 10 --warmup 3
    echo "$(grep '^torch' "$OUT/torch-paper.log") $(tail -1 "$OUT/torch-paper.log")"
    python3 tools/bench_classify_torch.py --device cuda --heads "$1" --warmup 5 --iters 30 >"$OUT/heads-torch.jsonl"
    cut -c1-110 "$OUT/heads-torch.jsonl"
    pack
}
