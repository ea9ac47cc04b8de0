"""PyTorch eager CPU baseline for the `daam` crate's speed targets (dev-time only).

Times float32 forward and forward+backward of:

  (a) `daam`: density_adaptive_attention on x [32, 24, 1024], 8 heads, form "variance",
      with x, δ and ξ requiring grad (the paper's DAAMv1 on IEMOCAP/CIFAR-sized features);
  (b) a DensityBlock (1 layer, 4 heads × 3 Gaussians, norm_axis 1, residual) on
      x [8, 128, 64, 64] (the VQ-VAE's first DAAM block), with x, m and c requiring grad, in two forms:
      - `density_block_authors`: the authors' code (per-head loop over `narrow` chunks, product of
        normalised Gaussians, divided by its sum clamped at eps; `GaussianBlock.py`);
      - `density_block_softmax`: our stable softmax form (`daam_reference.density_block`).

The backward is `(out * grad_out).sum().backward()` with a fixed random grad_out: the same
graph as the Rust criterion bench (`daam/benches/daam.rs`). Output lines (one per case and pass):

    torch <case>_fwd median_ms=<float>
    torch <case>_fwdbwd median_ms=<float>

Usage: python tools/bench_daam_torch.py [--threads 2] [--warmup 3] [--iters 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import daam_reference as ref  # noqa: E402


def authors_density_block(x: torch.Tensor, norm_axis: int, mean_offsets: torch.Tensor, c: torch.Tensor,
                          eps: float = 1e-8) -> torch.Tensor:
    """One DensityBlock layer written like the authors' `MultiHeadDensityAdaptiveAttention`.

    Per head: `narrow` chunk (last head takes the remainder), mean, unbiased var + eps, the
    product of N normalised Gaussians exp(−y²/(2c²))/sqrt(2πc²), divided by its sum along the
    axis (clamped at eps), x * mixture; heads concatenated; plus the residual x.
    """
    outputs = []
    start = 0
    for h, size in enumerate(ref.head_chunk_sizes(x.shape[norm_axis], mean_offsets.shape[0])):
        chunk = x.narrow(norm_axis, start, size)
        mean = chunk.mean(dim=norm_axis, keepdim=True)
        var = chunk.var(dim=norm_axis, keepdim=True) + eps
        mixture = 1
        for i in range(mean_offsets.shape[1]):
            y_norm = (chunk - (mean + mean_offsets[h, i])) / torch.sqrt(var)
            ci = c[h, i]
            gaussian = torch.exp(-((y_norm ** 2) / (2.0 * ci ** 2))) / torch.sqrt(2 * math.pi * ci ** 2)
            mixture = mixture * gaussian
        mixture = mixture / mixture.sum(dim=norm_axis, keepdim=True).clamp(min=eps)
        outputs.append(chunk * mixture)
        start += size
    return torch.cat(outputs, dim=norm_axis) + x


def time_case(step: Callable[[], None], warmup: int, iters: int) -> list[float]:
    """Run `step` warmup + iters times; return the timed iterations in milliseconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def make_steps(forward: Callable[[], torch.Tensor], leaves: list[torch.Tensor], grad_out: torch.Tensor):
    """A forward-only step (no graph) and a forward+backward step (grads reset each time)."""

    def fwd() -> None:
        with torch.no_grad():
            forward()

    def fwdbwd() -> None:
        for t in leaves:
            t.grad = None
        # The same graph as the Rust bench: d sum(out * grad_out).
        (forward() * grad_out).sum().backward()

    return fwd, fwdbwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per case (default 3)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per case (default 10)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = torch.float32
    cases: dict[str, tuple[Callable[[], torch.Tensor], list[torch.Tensor], torch.Tensor]] = {}

    # (a) DAAM [32, 24, 1024], H=8, variance form; random non-init δ, ξ as in the fixtures.
    x = torch.randn(32, 24, 1024, dtype=dtype, requires_grad=True)
    delta = (0.1 * torch.randn(8, 1024, dtype=dtype)).requires_grad_(True)
    xi = (1.5 + torch.rand(8, 1024, dtype=dtype)).requires_grad_(True)
    cases["daam_b32_s24_d1024_h8"] = (
        lambda x=x, d=delta, s=xi: ref.density_adaptive_attention(x, d, s, 8, "variance")[0],
        [x, delta, xi],
        torch.randn(32, 24, 1024, dtype=dtype),
    )

    # (b) DensityBlock [8, 128, 64, 64], norm_axis 1, 1 layer of 4 heads × 3 Gaussians, residual.
    xb = torch.randn(8, 128, 64, 64, dtype=dtype, requires_grad=True)
    m = (0.3 * torch.randn(4, 3, dtype=dtype)).requires_grad_(True)
    c = torch.exp(0.3 * torch.randn(4, 3, dtype=dtype)).requires_grad_(True)
    gb = torch.randn(8, 128, 64, 64, dtype=dtype)
    cases["density_block_authors_b8_c128_64x64"] = (
        lambda: authors_density_block(xb, 1, m, c), [xb, m, c], gb)
    cases["density_block_softmax_b8_c128_64x64"] = (
        lambda: ref.density_block(xb, 1, [(m, c)]), [xb, m, c], gb)

    # The two DensityBlock forms agree (sanity check, not timed).
    with torch.no_grad():
        a, b = authors_density_block(xb, 1, m, c), ref.density_block(xb, 1, [(m, c)])
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"forms differ by {(a - b).abs().max()}"

    results = {}
    for name, (forward, leaves, grad_out) in cases.items():
        fwd, fwdbwd = make_steps(forward, leaves, grad_out)
        for suffix, step in (("fwd", fwd), ("fwdbwd", fwdbwd)):
            times = time_case(step, args.warmup, args.iters)
            key = f"{name}_{suffix}"
            results[key] = {"median_ms": statistics.median(times), "min_ms": min(times), "times_ms": times}
            print(f"torch {key} median_ms={statistics.median(times):.3f}", flush=True)

    if args.json is not None:
        report = {
            "torch": torch.__version__,
            "threads": args.threads,
            "warmup": args.warmup,
            "iters": args.iters,
            "dtype": "float32",
            "machine": platform.machine(),
            "processor": platform.processor(),
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
