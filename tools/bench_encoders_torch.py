"""PyTorch side of the encoder extraction benchmark (issue #5, `tools/bench_encoders_compare.py`).

Builds real-size, random-weight `BeitModel` (microsoft/beit-large-patch16-224's architecture) and
`WavLMModel` (microsoft/wavlm-large's) from their configurations, seeded, with no hub access; with
`--save DIR` writes them with `save_pretrained` (safetensors) to `DIR/beit-large` and
`DIR/wavlm-large` so that the Rust bench (`encoders/benches/extract.rs`) loads the identical
weights. With `--load DIR` the timed model is read back from those folders instead of built.

Times the extraction forward that `classify extract` runs: eval mode, `torch.no_grad()`,
`output_hidden_states=True`, then the per-layer mean over tokens/frames of every layer's output
(the embedding output dropped), `[batch, layers, d_model]`. Float32, eager,
`torch.set_num_threads(N)`. Prints one JSON line per model:
{"model", "batch", "threads", "seconds" (median forward), "min_seconds", "items_per_second"
(from the median), "peak_rss_mib"}.
Peak RSS is the process's high-water mark (`ru_maxrss`) after the timed runs, so it includes
the weights and torch's own libraries; run one model per process for a per-model figure.

With `--reference FILE` it also writes the input and the pooled features to
`FILE-stem-<model>.safetensors`; `extract --reference` then checks the Rust forward against
them on the real-size model (max |burn − torch| / max |torch|).

Usage (repo root):
    python tools/bench_encoders_torch.py --save /tmp/encoders-bench --no-bench
    python tools/bench_encoders_torch.py --model beit --load /tmp/encoders-bench --threads 2 --batch 8
    python tools/bench_encoders_torch.py --model wavlm --load /tmp/encoders-bench --threads 2 --batch 2
    # on a GPU: random Llama-2-13B built on the card in f16, saved, timed
    python tools/bench_encoders_torch.py --model llama --device cuda --dtype f16 --save DIR
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

if int(transformers.__version__.split(".")[0]) >= 5:
    # transformers 5 renamed BEiT's modules (`layers.N.attention.q_proj`, no `encoder`): its
    # checkpoints no longer use the published names our loaders read.
    raise SystemExit(
        f"transformers {transformers.__version__}: this script needs 4.x "
        "(tools/requirements-encoders.txt pins 4.46.3; on the GPU machine tools/gpu/wheels.sh)"
    )

from transformers import (  # noqa: E402
    BeitConfig,
    BeitModel,
    LlamaConfig,
    LlamaModel,
    WavLMConfig,
    WavLMModel,
)

SAMPLE_RATE = 16_000
CLIP_SECONDS = 5
IMAGE_SIZE = 224


def beit_large_config() -> BeitConfig:
    """microsoft/beit-large-patch16-224's architecture (no classifier head)."""
    return BeitConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        hidden_act="gelu",
        image_size=IMAGE_SIZE,
        patch_size=16,
        num_channels=3,
        layer_norm_eps=1e-12,
        use_mask_token=False,
        use_absolute_position_embeddings=False,
        use_relative_position_bias=True,
        use_shared_relative_position_bias=False,
        layer_scale_init_value=0.1,
        use_mean_pooling=True,
    )


def wavlm_large_config() -> WavLMConfig:
    """microsoft/wavlm-large's architecture."""
    return WavLMConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        feat_extract_norm="layer",
        feat_extract_activation="gelu",
        conv_dim=[512] * 7,
        conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        conv_stride=[5, 2, 2, 2, 2, 2, 2],
        conv_bias=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        do_stable_layer_norm=True,
        num_buckets=320,
        max_bucket_distance=800,
        apply_spec_augment=False,
        mask_time_prob=0.0,
    )


def llama2_13b_config() -> LlamaConfig:
    """meta-llama/Llama-2-13b-hf's architecture (40 layers of 5120, 40 heads, SwiGLU 13824)."""
    return LlamaConfig(
        vocab_size=32_000,
        hidden_size=5120,
        intermediate_size=13_824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10_000.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )


DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def build(model: str, seed: int, device: str = "cpu", dtype: str = "f32") -> torch.nn.Module:
    """A seeded random-weight model of the real size, on `device` in `dtype`."""
    torch.manual_seed(seed)
    if model == "llama":
        # 13 B parameters: initialised where they will run, in their final dtype (26 GB in f16).
        previous = torch.get_default_dtype()
        torch.set_default_dtype(DTYPES[dtype])
        try:
            with torch.device(device):
                net = LlamaModel(llama2_13b_config())
        finally:
            torch.set_default_dtype(previous)
        return net.eval()
    if model == "beit":
        net = BeitModel(beit_large_config(), add_pooling_layer=False)
        # LayerScale is initialised to the constant 0.1; give it per-channel values so that a
        # port that mixes up the two lambdas or the channel order cannot pass by accident.
        with torch.no_grad():
            for layer in net.encoder.layer:
                layer.lambda_1.uniform_(0.05, 0.15)
                layer.lambda_2.uniform_(0.05, 0.15)
                table = layer.attention.attention.relative_position_bias.relative_position_bias_table
                table.normal_(0.0, 0.02)
    else:
        net = WavLMModel(wavlm_large_config())
    return net.to(device=device, dtype=DTYPES[dtype]).eval()


def inputs(model: str, batch: int, seed: int, tokens: int = 128) -> torch.Tensor:
    """Random pixels `[batch, 3, 224, 224]`, 5-s clips `[batch, 80000]` or token ids
    `[batch, tokens]` (the same ids as the Rust bench: `3 + (7919 i) mod 31997`)."""
    g = torch.Generator().manual_seed(seed)
    if model == "llama":
        i = torch.arange(batch * tokens, dtype=torch.int64)
        return (3 + (i * 7919) % 31_997).reshape(batch, tokens)
    if model == "beit":
        return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    return torch.randn(batch, SAMPLE_RATE * CLIP_SECONDS, generator=g)


@torch.no_grad()
def extract(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """All hidden states, then the per-layer mean pooling: `[batch, layers, d_model]`."""
    hidden = net(x, output_hidden_states=True).hidden_states
    # Read back to the host, as the Rust bench does, so that the GPU's work is inside the timing.
    return torch.stack([h.mean(dim=1) for h in hidden[1:]], dim=1).float().cpu()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["beit", "wavlm", "llama", "both"], default="both",
                   help="both: beit and wavlm; llama (Llama-2-13B, 26 GB in f16) only when named")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f32",
                   help="weights and compute (f16/bf16 on CUDA)")
    p.add_argument("--tokens", type=int, default=128, help="tokens per Llama sequence")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="default: 8 images / 2 clips")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, help="write <DIR>/beit-large and <DIR>/wavlm-large")
    p.add_argument("--load", type=Path, help="time the models saved under DIR")
    p.add_argument("--no-bench", action="store_true", help="only --save")
    p.add_argument("--reference", type=Path,
                   help="also write the input and the pooled output of the first timed forward "
                        "to this safetensors file (per model: <stem>-<model>.safetensors), for "
                        "`extract --reference`")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = ["beit", "wavlm"] if args.model == "both" else [args.model]
    folder = {"beit": "beit-large", "wavlm": "wavlm-large", "llama": "llama-2-13b"}

    for model in models:
        if args.load is not None:
            cls = {"beit": BeitModel, "wavlm": WavLMModel, "llama": LlamaModel}[model]
            kwargs = {"add_pooling_layer": False} if model == "beit" else {}
            net = cls.from_pretrained(args.load / folder[model], **kwargs).eval()
        else:
            net = build(model, args.seed, args.device, args.dtype)
        if args.save is not None:
            out = args.save / folder[model]
            try:
                net.save_pretrained(out, safe_serialization=True)
            except TypeError:  # transformers 5 always writes safetensors
                net.save_pretrained(out)
            print(f"saved {out}", flush=True)
        if args.no_bench:
            del net
            continue
        net = net.to(device=args.device, dtype=DTYPES[args.dtype])
        batch = args.batch or {"beit": 8, "wavlm": 2, "llama": 4}[model]
        x = inputs(model, batch, args.seed + 1, args.tokens)
        if model != "llama":
            x = x.to(dtype=DTYPES[args.dtype])
        x = x.to(args.device)
        for _ in range(args.warmup):
            extract(net, x)
        times = []
        for _ in range(args.iters):
            start = time.perf_counter()
            pooled = extract(net, x)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        if args.reference is not None and model != "llama":
            from safetensors.torch import save_file
            out = args.reference.with_name(f"{args.reference.stem}-{model}.safetensors")
            save_file({"input": x.float().cpu().contiguous(), "pooled": pooled.contiguous()}, str(out))
        print(json.dumps({
            "model": model,
            "device": args.device,
            "precision": args.dtype,
            "batch": batch,
            "threads": args.threads,
            "shape": list(pooled.shape),
            "seconds": seconds,
            "min_seconds": min(times),
            "items_per_second": batch / seconds,
            "peak_rss_mib": peak_rss_mib(),
            "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20
                             if args.device == "cuda" else None),
        }), flush=True)
        del net


if __name__ == "__main__":
    main()
