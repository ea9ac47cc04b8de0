#!/bin/bash
# Where a burn CUDA training run spends its first step (NOTES.md: no step finished in 150 s even
# without autotune and with a warm PTX cache). Samples, while `vqvae-fixed train --preset tiny`
# runs: per-thread CPU use and kernel wait channel, GPU utilisation, and (where gdb or eu-stack
# exists) every thread's stack. The binary travels unstripped so the stacks carry names.
set -u
source tools/gpu/common.sh
which gdb eu-stack py-spy 2>/dev/null
"$BIN/vqvae-fixed" train --preset tiny --device cuda --max-steps 100000 --out /tmp/diag >"$OUT/diag.log" 2>&1 &
pid=$!
for t in 15 45 75 105 135; do
    sleep $(( t - ${last:-0} )); last=$t
    {
        echo "=== t=${t}s"
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
        ps -L -o tid,pcpu,stat,wchan:28,comm -p "$pid" | sort -k2 -nr | head -12
        wc -l /tmp/diag/metrics.csv 2>/dev/null
    } | tee -a "$OUT/samples.txt"
    if [ "$t" = 75 ] || [ "$t" = 135 ]; then
        if command -v gdb >/dev/null; then
            gdb -p "$pid" -batch -ex "thread apply all bt 25" >"$OUT/stacks-$t.txt" 2>&1
        elif command -v eu-stack >/dev/null; then
            eu-stack -p "$pid" >"$OUT/stacks-$t.txt" 2>&1
        else
            for task in /proc/$pid/task/*; do echo "$task $(cat $task/comm) $(cat $task/stat | cut -d' ' -f3,14,15)"; done >"$OUT/stacks-$t.txt"
        fi
        grep -c "^Thread\|^TID" "$OUT/stacks-$t.txt"
    fi
done
kill -9 "$pid"
tail -5 "$OUT/diag.log"
(cd /tmp && tar czf "$FINAL/diag.tgz" results)
