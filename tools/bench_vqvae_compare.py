"""Training throughput and peak memory of `vqvae train` next to the same network in PyTorch.

For each preset: runs `target/release/vqvae train --preset P --max-steps N` on the embedded
procedural images and `tools/vqvae_torch.py --preset P`, both under `/usr/bin/time -v` with the
same thread count (RAYON_NUM_THREADS / torch.set_num_threads), and prints a markdown table:
images/s (Rust: median of the `images_per_second` column of metrics.csv after the warm-up steps;
PyTorch: batch / median step time), peak resident memory, and the ratio Rust / PyTorch
(>= 1.0: at least as fast).

Usage (repo root, after `cargo build --release -p vqvae` and `pip install -r tools/requirements.txt`):
    python tools/bench_vqvae_compare.py [--threads 2] [--presets small,paper] [--steps small=30,paper=4]
        [--batch-size N]   (both sides; default: each preset's batch)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mib(stderr: str) -> float:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(match.group(1)) / 1024 if match else float("nan")


def rust(preset: str, steps: int, warmup: int, threads: int, batch: int | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        cmd = ["/usr/bin/time", "-v", str(ROOT / "target/release/vqvae"), "train", "--preset", preset,
               "--max-steps", str(steps), "--out", str(run)]
        if batch:
            cmd += ["--batch-size", str(batch)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"vqvae failed:\n{done.stderr}")
        rows = (run / "metrics.csv").read_text().splitlines()[1:]
        rates = [float(r.split(",")[8]) for r in rows[warmup:]]
        return statistics.median(rates), peak_rss_mib(done.stderr)


def torch(preset: str, steps: int, warmup: int, threads: int, batch: int | None) -> tuple[float, float]:
    cmd = ["/usr/bin/time", "-v", sys.executable, str(ROOT / "tools/vqvae_torch.py"), "--preset", preset,
           "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads)]
    if batch:
        cmd += ["--batch-size", str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"vqvae_torch.py failed:\n{done.stderr}")
    rate = float(re.search(r"images_per_s=([0-9.]+)", done.stdout).group(1))
    return rate, peak_rss_mib(done.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default="small,paper")
    parser.add_argument("--steps", default="small=30,paper=4,tiny=50", help="timed steps per preset")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step on both sides (default: each preset's own batch)")
    args = parser.parse_args()
    steps = dict(item.split("=") for item in args.steps.split(","))
    print("| preset | burn images/s | torch images/s | burn / torch | burn peak RSS MiB | torch peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        n = int(steps[preset])
        warmup = 2
        r_rate, r_mem = rust(preset, n + warmup, warmup, args.threads, args.batch_size)
        t_rate, t_mem = torch(preset, n, warmup, args.threads, args.batch_size)
        label = f"{preset}, batch {args.batch_size}" if args.batch_size else preset
        print(f"| {label} | {r_rate:.2f} | {t_rate:.2f} | {r_rate / t_rate:.2f} | {r_mem:.0f} | {t_mem:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
