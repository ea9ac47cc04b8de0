"""Side-by-side: DAT head training steps in burn (criterion) and PyTorch eager, same shapes and threads.

Runs `cargo bench -p classify --bench heads` with RAYON_NUM_THREADS=N (criterion median of 10
samples of one training step: forward, cross-entropy, backward, AdamW; batch 32 x 24 layers x
1024 features, 4 classes), then `tools/bench_classify_torch.py --threads N` (the same heads and
optimizer, median of 10 steps), and prints a markdown table of samples/s and the ratio
burn / torch (>= 1.0: burn at least as fast).

Usage (repo root): python tools/bench_classify_compare.py [--threads 2] [--skip-cargo]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion" / "dat_train_step"
BATCH = 32


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    args = p.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "-p", "classify", "--bench", "heads"], cwd=ROOT, env=env, check=True)
    torch_out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_classify_torch.py"), "--threads", str(args.threads)],
        capture_output=True, text=True, check=True).stdout
    torch_ms = {r["head"]: r["ms"] for r in map(json.loads, torch_out.strip().splitlines())}
    print(f"| head | burn ms/step | torch ms/step | burn samples/s | torch samples/s | burn / torch |")
    print("|---|---|---|---|---|---|")
    for head, t_ms in torch_ms.items():
        est = json.loads((CRITERION / head / "new" / "estimates.json").read_text())
        b_ms = est["median"]["point_estimate"] / 1e6
        print(f"| {head} | {b_ms:.1f} | {t_ms:.1f} | {BATCH / b_ms * 1e3:.0f} | {BATCH / t_ms * 1e3:.0f} | "
              f"**{t_ms / b_ms:.2f}** |")


if __name__ == "__main__":
    main()
