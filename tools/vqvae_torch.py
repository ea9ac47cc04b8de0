"""The `vqvae` crate's network and training step in PyTorch, for side-by-side speed and memory
measurements (dev-time only; `tools/bench_vqvae_compare.py` runs it).

Same architecture as `vqvae/src/model/` (DESIGN.md "vqvae"): stem conv3x3, per width a strided
conv4x4 (stride 2, padding 1) -> GroupNorm (a per-channel affine in the `small` preset, as
`model.sampling_norm = false`) -> ReLU -> residual block
`x + conv3x3(ReLU(GN(conv3x3(ReLU(GN(x))))))` -> DensityBlock on the channel axis (softmax form,
4 heads x 3 Gaussians, residual), then conv1x1 to the code dimension; the decoder mirrors it with
transposed convs; nearest-code VQ with straight-through, codebook loss + 0.25 commitment; Adam
(eps 1e-8). Images are random tensors (no data loading).

Usage: python tools/vqvae_torch.py --preset small|paper [--steps 20] [--warmup 3] [--threads 2]
Prints `torch preset=<p> images_per_s=<float> step_ms=<float>`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # hidden widths, code_dim, num_codes, norm_groups, image_size, batch_size, learning rate,
    # sampling_norm (GroupNorm after the strided / transposed convs; else a per-channel affine)
    "small": ([32, 64, 128], 64, 512, 16, 64, 16, 1e-3, False),
    "paper": ([128, 256, 512], 256, 1024, 32, 256, 32, 3e-4, True),
    "tiny": ([8, 16], 8, 32, 4, 16, 4, 3e-3, True),
}


class Affine(nn.Module):
    """Per-channel `weight * x + bias` (weight 1, bias 0 at init): vqvae's `GroupNormRelu::affine`
    without its ReLU, which follows as a separate module."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class MixtureDensityAttention(nn.Module):
    """Heads split dim 1 (last takes the remainder); softmax of summed log-Gaussians."""

    def __init__(self, num_heads: int = 4, num_gaussians: int = 3, eps: float = 1e-8):
        super().__init__()
        self.mean_offsets = nn.Parameter(torch.zeros(num_heads, num_gaussians))
        self.c = nn.Parameter(torch.exp(torch.randn(num_heads, num_gaussians)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.c.shape[0]
        n = x.shape[1]
        base = n // heads
        outs = []
        for h in range(heads):
            start = h * base
            size = n - start if h == heads - 1 else base
            chunk = x.narrow(1, start, size)
            mean = chunk.mean(dim=1, keepdim=True)
            var = (chunk.var(dim=1, keepdim=True) if size > 1 else torch.zeros_like(mean)) + self.eps
            z = chunk - mean
            logit = torch.zeros_like(chunk)
            for i in range(self.c.shape[1]):
                logit = logit - (z - self.mean_offsets[h, i]) ** 2 / (2 * self.c[h, i] ** 2 * var)
            outs.append(chunk * torch.softmax(logit, dim=1))
        return torch.cat(outs, dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, groups: int, daam: bool):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.attention = MixtureDensityAttention() if daam else None

    def forward(self, x):
        h = self.conv1(F.relu(self.norm1(x)))
        h = x + self.conv2(F.relu(self.norm2(h)))
        return h + self.attention(h) if self.attention is not None else h


class VqVae(nn.Module):
    def __init__(self, hidden, code_dim, num_codes, groups, daam=True, sampling_norm=True):
        super().__init__()

        def norm(c):
            return nn.GroupNorm(groups, c) if sampling_norm else Affine(c)

        self.stem = nn.Conv2d(3, hidden[0], 3, padding=1)
        downs, c_in = [], hidden[0]
        for c_out in hidden:
            downs += [nn.Conv2d(c_in, c_out, 4, 2, 1), norm(c_out), nn.ReLU(),
                      ResidualBlock(c_out, groups, daam)]
            c_in = c_out
        self.down = nn.Sequential(*downs)
        self.to_code = nn.Conv2d(c_in, code_dim, 1)
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes))
        self.dec_stem = nn.Conv2d(code_dim, hidden[-1], 3, padding=1)
        ups, c_in, n = [], hidden[-1], len(hidden)
        for i in range(n):
            c_out = hidden[n - 2 - i] if i + 1 < n else hidden[0]
            ups += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), norm(c_out), nn.ReLU(),
                    ResidualBlock(c_out, groups, daam)]
            c_in = c_out
        self.up = nn.Sequential(*ups)
        self.to_image = nn.Conv2d(hidden[0], 3, 3, padding=1)

    def forward(self, x):
        z = self.to_code(self.down(self.stem(x)))
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        distances = (self.codebook ** 2).sum(1)[None, :] - 2 * flat @ self.codebook.t()
        indices = distances.argmin(1)
        chosen = self.codebook[indices]
        codebook_loss = F.mse_loss(chosen, flat.detach())
        commitment = 0.25 * F.mse_loss(flat, chosen.detach())
        quantized = (flat + (chosen - flat).detach()).reshape(b, h, w, d).permute(0, 3, 1, 2)
        recon = self.to_image(self.up(self.dec_stem(quantized)))
        return F.mse_loss(recon, x) + codebook_loss + commitment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", choices=["daam", "none"], default="daam")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: eager float32 on the GPU, each step synchronised")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden, code_dim, num_codes, groups, size, batch, lr, sampling_norm = PRESETS[args.preset]
    batch = args.batch_size or batch
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    model = VqVae(hidden, code_dim, num_codes, groups, args.attention == "daam", sampling_norm).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        loss = model(images)
        loss.backward()
        optim.step()
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    gpu = (f" peak_gpu_mib={torch.cuda.max_memory_allocated() / 2**20:.0f}"
           if args.device == "cuda" else "")
    print(f"torch preset={args.preset} images_per_s={batch / step_s:.3f} step_ms={1e3 * step_s:.1f}{gpu}",
          flush=True)


if __name__ == "__main__":
    main()
