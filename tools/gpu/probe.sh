#!/bin/bash
# Where a burn CUDA training step stops or spends its time (NOTES.md, session 8: after the
# deadlock fix still no `vqvae train` step in 100 s, nor a DAT head's). About 4.5 minutes:
#   1. the `backend_probe` bench: op by op (burn linear and conv2d as controls, then each
#      DaamBackend op) a forward, a backward and a gradient read through Autodiff<Cuda>, each
#      synced and timed, three rounds; a stage past 60 s ends it with the threads' states and
#      CPU use (busy = compiling/autotuning, all idle in futex waits = a deadlock);
#   2. `vqvae train --preset small` with RUST_LOG=vqvae::train=debug (each phase of a step
#      synced and timed), Ctrl-C at 100 s, the threads sampled every 15 s.
# cubecl logs each kernel it compiles ([compilation.logger] level basic) to a file per program.
# Binaries (carry .gpudata): .gpudata/backend_probe.xz (target/release/deps/backend_probe-HASH
# of `cargo build --release -p daam --bench backend_probe --features cuda`) and .gpudata/vqvae.xz.
set -u
source tools/gpu/common.sh
PACK=probe-results

# `kernel_log FILE`: cubecl.toml with the PTX cache and a log line per compiled kernel in FILE.
kernel_log() {
    kernel_cache /tmp/kc
    printf '\n[compilation.logger]\nlevel = "basic"\nfile = "%s"\n' "$1" >>cubecl.toml
}

# `sample_threads NAME SECONDS`: every SECONDS, the GPU's use, the kernels compiled so far and
# the busiest threads of the process called NAME, appended to $OUT/NAME-threads.txt.
sample_threads() {
    while sleep "$2"; do
        pid=$(pgrep -x "$1" | head -1)
        [ -n "$pid" ] || continue
        {
            stamp "$1"
            nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
            echo "kernels compiled: $( (wc -l <"$OUT/kernels-$1.log") 2>/dev/null)"
            ps -L -o tid,pcpu,stat,wchan:28,comm -p "$pid" | sort -k2 -nr | head -8
        } >>"$OUT/$1-threads.txt"
    done
}

stamp "backend_probe (a stage past 60 s ends it; 200 s in all)"
kernel_log "$OUT/kernels-backend_probe.log"
[ -x "$BIN/backend_probe" ] && timeout -k 5 200 "$BIN/backend_probe" --device cuda --rounds 3 --stage-timeout 60 2>&1 | tee "$OUT/probe.log" | grep -v '^round [23]'
grep '^round [23]' "$OUT/probe.log" | tail -21
echo "kernels compiled: $( (wc -l <"$OUT/kernels-backend_probe.log") 2>/dev/null)"
pack

stamp "vqvae small, phases timed (Ctrl-C at 100 s)"
kernel_log "$OUT/kernels-vqvae.log"
sample_threads vqvae 15 &
sampler=$!
NO_COLOR=1 RUST_LOG=vqvae::train=debug train burn-small vqvae small 100
kill "$sampler" 2>/dev/null
grep -E 'phases|done in' "$OUT/burn-small.log" | head -8
grep -E 'phases' "$OUT/burn-small.log" | tail -3
tail -12 "$OUT/vqvae-threads.txt" 2>/dev/null
echo "kernels compiled: $( (wc -l <"$OUT/kernels-vqvae.log") 2>/dev/null)"
stamp done
pack
