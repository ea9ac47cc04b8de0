"""Side-by-side: DAT head training steps in burn and PyTorch eager, same shapes and threads.

Builds and runs the bench program `classify/benches/train_step.rs` (one training step per head:
forward, cross-entropy, backward, AdamW; batch 32 x 24 layers x 1024 features, 4 classes;
median of --iters steps after --warmup) with RAYON_NUM_THREADS=N, then
`tools/bench_classify_torch.py --threads N` (the same heads and optimizer), alternating the two
for --rounds rounds so that both see the same machine state. Prints a markdown table: per head
the median over rounds of each side's median step time, samples/s, the ratio burn / torch
(>= 1.0: burn at least as fast) and the lowest and highest per-round ratio.
`--device cuda` runs both on the GPU (a `--features cuda` build); `--precision bf16|f16` times
both sides' mixed-precision step (`classify replicate --precision`).

Usage (repo root): python tools/bench_classify_compare.py [--threads 2] [--rounds 3] [--iters 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32


def bench_binary(features: list[str]) -> str:
    """Builds the train_step bench and returns its executable's path."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "classify", "--bench", "train_step", "--no-run",
         "--message-format=json", *features],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "train_step" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo did not report the train_step executable")


def rows(text: str) -> dict[str, float]:
    return {r["head"]: r["ms"] for r in map(json.loads, text.strip().splitlines())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32",
                   help="mixed precision of both sides (meant for --device cuda)")
    p.add_argument("--heads", help="comma-separated heads (default: all)")
    p.add_argument("--binary", help="a built train_step bench (default: cargo builds it)")
    args = p.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    binary = args.binary or bench_binary(["--features", "cuda"] if args.device == "cuda" else [])
    common = ["--device", args.device, "--warmup", str(args.warmup), "--iters", str(args.iters),
              "--precision", args.precision]
    if args.heads:
        common += ["--heads", args.heads]
    burn: dict[str, list[float]] = {}
    torch: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        out = subprocess.run([binary, *common], env=env, capture_output=True, text=True, check=True)
        for head, ms in rows(out.stdout).items():
            burn.setdefault(head, []).append(ms)
        out = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "bench_classify_torch.py"), "--threads", str(args.threads),
             *common], capture_output=True, text=True, check=True)
        for head, ms in rows(out.stdout).items():
            torch.setdefault(head, []).append(ms)
    print(f"{args.rounds} rounds, {args.threads} threads, device {args.device}, "
          f"precision {args.precision}\n")
    print("| head | burn ms/step | torch ms/step | burn samples/s | torch samples/s | burn / torch | range |")
    print("|---|---|---|---|---|---|---|")
    for head, t in torch.items():
        b = burn[head]
        b_ms, t_ms = statistics.median(b), statistics.median(t)
        ratios = [tt / bb for bb, tt in zip(b, t)]
        print(f"| {head} | {b_ms:.1f} | {t_ms:.1f} | {BATCH / b_ms * 1e3:.0f} | {BATCH / t_ms * 1e3:.0f} | "
              f"**{t_ms / b_ms:.2f}** | {min(ratios):.2f}–{max(ratios):.2f} |")


if __name__ == "__main__":
    main()
