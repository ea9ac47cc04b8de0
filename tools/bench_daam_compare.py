"""Side-by-side: the `daam` crate's criterion bench and PyTorch eager, same shapes and threads.

Runs `cargo bench -p daam --bench daam` with RAYON_NUM_THREADS=N, reads criterion's median
estimates, runs `tools/bench_daam_torch.py --threads N`, and prints a markdown table with the
ratio torch / fused (≥ 1.0 means the fused burn op is at least as fast) and the memory-bandwidth
bound of each fused op: the bytes its kernels must move divided by the measured copy bandwidth.

Usage (repo root, after `pip install -r tools/requirements.txt`):
    python tools/bench_daam_compare.py [--threads 2] [--skip-cargo]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"

# (criterion group, torch case, elements, bytes per element moved: forward, forward+backward)
#  - per-feature DAAM: forward reads x, writes out and w (3 f32 = 12 B); backward reads x, w,
#    grad, writes grad_x (4): 7 f32 = 28 B in all.
#  - DensityBlock layer: forward reads x, writes out and w (3), the residual add reads 2 and
#    writes 1 (3): 24 B; backward reads x and grad, writes grad_x (3): 36 B in all.
# The loss `sum(out * grad_out)` and burn's graph bookkeeping are not counted.
CASES = [
    ("daam_b32_s24_d1024_h8", "daam_b32_s24_d1024_h8", 32 * 24 * 1024, (12, 28)),
    ("density_block_b8_c128_64x64", "density_block_softmax_b8_c128_64x64", 8 * 128 * 64 * 64, (24, 36)),
    ("density_block_b8_c128_64x64", "density_block_authors_b8_c128_64x64", 8 * 128 * 64 * 64, (24, 36)),
]


def criterion_ms(bench_id: str) -> float:
    path = CRITERION / bench_id / "new" / "estimates.json"
    estimates = json.loads(path.read_text())
    return estimates["median"]["point_estimate"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    args = parser.parse_args()

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "-p", "daam", "--bench", "daam"], cwd=ROOT, env=env, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "torch.json"
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "bench_daam_torch.py"), "--threads", str(args.threads),
             "--iters", "20", "--json", str(out)],
            cwd=ROOT, check=True,
        )
        torch = json.loads(out.read_text())

    copy_ms = criterion_ms("copy_128MiB")
    bandwidth = 2 * 128 * 2**20 / (copy_ms / 1e3)  # bytes/s, read + write
    print(f"\nthreads {args.threads}; torch {torch['torch']}; copy bandwidth {bandwidth / 1e9:.1f} GB/s "
          f"(128 MiB copy, {copy_ms:.2f} ms)\n")
    print("| case | pass | burn fused ms | burn composed ms | torch eager ms | torch / fused | bandwidth bound ms |")
    print("|---|---|---|---|---|---|---|")
    for group, case, elements, bytes_per in CASES:
        for pass_ in ("fwd", "fwdbwd"):
            fused = criterion_ms(f"{group}_{pass_}/fused")
            composed = f"{criterion_ms(f'{group}_{pass_}/composed'):.2f}" if pass_ == "fwdbwd" else "–"
            t = torch["results"][f"{case}_{pass_}"]["median_ms"]
            moved = elements * bytes_per[pass_ == "fwdbwd"]
            bound = moved / bandwidth * 1e3
            print(f"| {case} | {pass_} | {fused:.2f} | {composed} | {t:.2f} | {t / fused:.2f} | {bound:.2f} |")


if __name__ == "__main__":
    main()
