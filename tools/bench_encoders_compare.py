"""Side-by-side: encoder extraction items/s in burn (Flex, CPU) and PyTorch eager (issue #5).

For each model (BEiT-Large: batch 8 images of 224²; WavLM-Large: batch 2 clips of 5 s) runs, in
separate processes and one after the other:
  - `tools/bench_encoders_torch.py --model M --load DIR` (transformers 4.46.3, torch 2.5.1,
    float32 eager, `torch.set_num_threads(N)`), and
  - the Rust bench `cargo bench -p encoders --bench extract -- --model M --dir DIR/...`
    (`RAYON_NUM_THREADS=N`),
both on the same random-weight checkpoint (written once by `bench_encoders_torch.py --save DIR`
when DIR lacks it), both timing the forward with every hidden state plus the per-layer mean
pooling, `--iters` timed runs after `--warmup` untimed ones. Prints a markdown table with
ratio = burn items/s ÷ torch items/s from the median forward (≥ 1.0: burn at least as fast), the
same ratio from the fastest forward, each process's peak RSS, and the share of the machine's CPU
time that other processes took during each run (the machine is shared; a run with a large share
is not a clean measurement).

With `--min-idle F` each run first waits (up to 10 min) until the CPUs were at least F idle
over 3 s.

Usage (repo root):
    python tools/bench_encoders_compare.py --threads 2 [--dir /tmp/encoders-bench] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"beit": "beit-large", "wavlm": "wavlm-large"}
DEFAULT_BATCH = {"beit": 8, "wavlm": 2}
ITEM = {"beit": "images of 224²", "wavlm": "clips of 5 s"}


def cpu_idle(seconds: float = 3.0) -> float:
    """The fraction of all cores' time spent idle over the next `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def measured(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Runs `cmd`; returns its JSON result and the share of the machine's CPU time that other
    processes used meanwhile (0 on an otherwise idle machine)."""
    ticks = os.sysconf("SC_CLK_TCK")
    busy0, total0 = cpu_times()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = cpu_times()
    own = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) * ticks
    others = max(busy1 - busy0 - own, 0) / max(total1 - total0, 1)
    return last_json(out.stdout), others


def wait_for_quiet(min_idle: float | None) -> float:
    """Waits (at most 10 min) until the CPUs are at least `min_idle` idle; returns the idle
    fraction seen last."""
    idle = cpu_idle()
    deadline = time.time() + 600
    while min_idle is not None and idle < min_idle and time.time() < deadline:
        time.sleep(5)
        idle = cpu_idle()
    return idle


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON result in:\n{stdout}")
    return json.loads(lines[-1])


def run_torch(model: str, args, batch: int) -> tuple[dict, float]:
    cmd = [sys.executable, str(ROOT / "tools" / "bench_encoders_torch.py"), "--model", model,
           "--load", str(args.dir), "--threads", str(args.threads), "--batch", str(batch),
           "--warmup", str(args.warmup), "--iters", str(args.iters)]
    return measured(cmd)


def run_burn(model: str, args, batch: int) -> tuple[dict, float]:
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    cmd = ["cargo", "bench", "-q", "-p", "encoders", "--bench", "extract", "--", "--model", model,
           "--dir", str(args.dir / FOLDERS[model]), "--batch", str(batch),
           "--warmup", str(args.warmup), "--iters", str(args.iters)]
    return measured(cmd, env)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", type=Path, default=Path("/tmp/encoders-bench"))
    p.add_argument("--models", nargs="+", choices=["beit", "wavlm"], default=["beit", "wavlm"])
    p.add_argument("--beit-batch", type=int, default=DEFAULT_BATCH["beit"])
    p.add_argument("--wavlm-batch", type=int, default=DEFAULT_BATCH["wavlm"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="repeat torch-then-burn this many times")
    p.add_argument("--min-idle", type=float, default=None,
                   help="before each run wait until the CPUs were at least this idle (0-1) over 3 s")
    args = p.parse_args()

    missing = [m for m in args.models if not (args.dir / FOLDERS[m] / "model.safetensors").is_file()]
    if missing:
        subprocess.run([sys.executable, str(ROOT / "tools" / "bench_encoders_torch.py"), "--save",
                        str(args.dir), "--no-bench", "--model",
                        missing[0] if len(missing) == 1 else "both"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "bench", "-q", "-p", "encoders", "--bench", "extract", "--no-run"],
                   cwd=ROOT, check=True)

    rows = []
    for model in args.models:
        batch = args.beit_batch if model == "beit" else args.wavlm_batch
        for _ in range(args.rounds):
            wait_for_quiet(args.min_idle)
            torch_result, torch_others = run_torch(model, args, batch)
            wait_for_quiet(args.min_idle)
            burn_result, burn_others = run_burn(model, args, batch)
            rows.append((model, batch, torch_result, burn_result, torch_others, burn_others))
            print(json.dumps({"torch": torch_result, "burn": burn_result,
                              "others_cpu": [torch_others, burn_others]}), file=sys.stderr, flush=True)

    print(f"\nthreads {args.threads}; {args.iters} timed forwards after {args.warmup} warm-up; "
          "items/s from the median forward, ratio also from the fastest\n")
    print("| model | batch | burn s/batch | torch s/batch | burn items/s | torch items/s | burn / torch "
          "| burn / torch (fastest) | burn peak RSS MiB | torch peak RSS MiB "
          "| others' CPU share (torch, burn run) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, batch, t, b, ot, ob in rows:
        name = "BEiT-Large" if model == "beit" else "WavLM-Large"
        print(f"| {name} | {batch} {ITEM[model]} | {b['seconds']:.2f} | {t['seconds']:.2f} | "
              f"{b['items_per_second']:.3f} | {t['items_per_second']:.3f} | "
              f"**{b['items_per_second'] / t['items_per_second']:.2f}** | "
              f"{t['min_seconds'] / b['min_seconds']:.2f} | {b['peak_rss_mib']:.0f} | "
              f"{t['peak_rss_mib']:.0f} | {ot:.0%}, {ob:.0%} |")


if __name__ == "__main__":
    main()
