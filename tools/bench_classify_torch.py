"""PyTorch side of the DAT head training benchmark (`tools/bench_classify_compare.py`).

The same heads as `classify::head` (DAT decoder: attention over layers -> Conv2d(L->512, 3x3) ->
ReLU -> Conv2d(512->L, 3x3) -> ReLU -> Linear(L*W -> C)), the same optimizer (AdamW, eps 1e-8,
weight decay 0.01) and loss (cross-entropy), in eager float32 on the CPU with
torch.set_num_threads(N) (`--device cuda`: on the GPU; `--precision bf16|f16`: autocast over the
convolutions and classifier, f16 with a GradScaler, the policy of `classify --precision`). Times one training step (forward, loss, backward, optimizer step) on
random embeddings and prints one JSON line per head: {"head", "ms", "samples_per_second"}.

Usage: python tools/bench_classify_torch.py [--threads 2] [--batch 32] [--layers 24] [--d-model 1024]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daam_reference import density_adaptive_attention, density_block, grouped_query_attention  # noqa: E402


class Daam(nn.Module):
    def __init__(self, heads: int, d_model: int):
        super().__init__()
        self.heads = heads
        self.mean_offset = nn.Parameter(torch.zeros(heads, d_model))
        self.scaled_variance = nn.Parameter(torch.full((heads, d_model), 2.0))

    def forward(self, x):
        return density_adaptive_attention(x, self.mean_offset, self.scaled_variance, self.heads)[0]


class Mixture(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.zeros(8, 4))
        self.c = nn.Parameter(torch.exp(torch.randn(8, 4)))

    def forward(self, x):
        return density_block(x, 1, [(self.m, self.c)])


class Gqa(nn.Module):
    def __init__(self, width: int = 512, heads: int = 8, kv: int = 2):
        super().__init__()
        kv_dim = width // heads * kv
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, kv_dim), nn.Linear(width, kv_dim)
        self.o = nn.Linear(width, width)
        self.heads, self.kv = heads, kv

    def forward(self, x):
        return grouped_query_attention(x, self.q.weight, self.q.bias, self.k.weight, self.k.bias,
                                       self.v.weight, self.v.bias, self.o.weight, self.o.bias,
                                       self.heads, self.kv)


class Mha(nn.Module):
    def __init__(self, d_model: int, bn_layers: int | None):
        super().__init__()
        self.mha = nn.MultiheadAttention(d_model, 8, batch_first=True)
        self.bn = nn.BatchNorm1d(bn_layers) if bn_layers else None

    def forward(self, x):
        y = self.mha(x, x, x, need_weights=False)[0]
        return self.bn(y) if self.bn is not None else y


def grid_for(n: int) -> tuple[int, int]:
    h = int(math.isqrt(n))
    while h > 1 and n % h:
        h -= 1
    return h, n // h


class Dat(nn.Module):
    def __init__(self, kind: str, layers: int, d_model: int, classes: int):
        super().__init__()
        width = 512 if kind in ("gq-daam", "gqa") else d_model
        self.attention = {
            "daam-v1": lambda: Daam(8, d_model),
            "daam-v2": lambda: Daam(1, d_model),
            "mixture": Mixture,
            "gq-daam": lambda: nn.Sequential(Daam(8, d_model), nn.Linear(d_model, 512), Gqa()),
            "mha": lambda: Mha(d_model, None),
            "mha-bn": lambda: Mha(d_model, layers),
            "gqa": lambda: nn.Sequential(nn.Linear(d_model, 512), Gqa()),
        }[kind]()
        self.grid = grid_for(width)
        self.conv1 = nn.Conv2d(layers, 512, 3, padding=1)
        self.conv2 = nn.Conv2d(512, layers, 3, padding=1)
        self.fc = nn.Linear(layers * width, classes)

    def forward(self, x, amp: torch.dtype | None = None):
        b, l, _ = x.shape
        h = self.attention(x).reshape(b, l, *self.grid)
        # Mixed precision as classify's --precision: only the convolutions and the classifier
        # run in half precision; the attention, the logits and the loss stay float32.
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            h = torch.relu(self.conv2(torch.relu(self.conv1(h))))
            logits = self.fc(h.reshape(b, -1))
        return logits.float()


KINDS = ["daam-v1", "daam-v2", "mixture", "gq-daam", "mha", "mha-bn", "gqa"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--d-model", type=int, default=1024)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--heads", default=",".join(KINDS))
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: eager float32 on the GPU, each step synchronised")
    p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32",
                   help="bf16/f16: autocast over the convolutions and classifier (f16 with a "
                        "GradScaler), as classify replicate --precision")
    args = p.parse_args()
    amp = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[args.precision]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    x = torch.randn(args.batch, args.layers, args.d_model, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    for kind in args.heads.split(","):
        model = Dat(kind, args.layers, args.d_model, args.classes).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-8, weight_decay=0.01)
        scaler = torch.amp.GradScaler(args.device, enabled=args.precision == "f16")
        times = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x, amp), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        ms = 1e3 * statistics.median(times)
        print(json.dumps({"head": kind, "device": args.device, "precision": args.precision, "ms": ms, "samples_per_second": args.batch / (ms / 1e3)}), flush=True)


if __name__ == "__main__":
    main()
