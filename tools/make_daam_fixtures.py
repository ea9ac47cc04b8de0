"""Write the `daam` crate's test fixtures from the PyTorch reference (`tools/daam_reference.py`).

Usage (from the repository root):

    pip install -r tools/requirements.txt      # torch, numpy, safetensors (dev-time only)
    /work/pyvenv/bin/python tools/make_daam_fixtures.py

Every fixture is computed in float64 and stored as float32 (the exact answer, rounded) in
`daam/tests/fixtures/<name>.safetensors`, with the configuration in the safetensors metadata.
Each file holds the inputs, the parameters, the output, an upstream gradient `grad_out` and the
gradients of `sum(output * grad_out)` with respect to the input and every parameter
(`grad_<name>`). The script first runs self-checks (asserts): autograd gradcheck of every
reference function, the softmax mixture against the authors' product-of-Gaussians form, DAAM
against a literal port of the authors' per-head loop and GQA against PyTorch's own SDPA.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
import daam_reference as ref  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO_ROOT / "daam" / "tests" / "fixtures"
DTYPE = torch.float64

# ---------------------------------------------------------------------------------------------
# Random inputs and parameters
# ---------------------------------------------------------------------------------------------


def shifted_input(shape: tuple[int, ...], axis: int) -> torch.Tensor:
    """x ~ randn with a per-position scale and shift along `axis`.

    So the mean/variance statistics differ between the head chunks of that axis.
    """
    n = shape[axis]
    view = [1] * len(shape)
    view[axis] = n
    scale = torch.exp(0.5 * torch.randn(n, dtype=DTYPE)).reshape(view)
    shift = torch.randn(n, dtype=DTYPE).reshape(view)
    return torch.randn(shape, dtype=DTYPE) * scale + shift


def daam_params(num_heads: int, d_model: int) -> dict[str, torch.Tensor]:
    """δ ~ 0.1·randn, ξ ~ 1.5 + U(0, 1) (positive); not the inits (0 and 2)."""
    return {
        "mean_offset": 0.1 * torch.randn(num_heads, d_model, dtype=DTYPE),
        "scaled_variance": 1.5 + torch.rand(num_heads, d_model, dtype=DTYPE),
    }


def mixture_params(num_heads: int, num_gaussians: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """m ~ 0.3·randn, c ~ exp(0.3·randn); `[num_heads, num_gaussians]`."""
    return {
        f"{prefix}mean_offsets": 0.3 * torch.randn(num_heads, num_gaussians, dtype=DTYPE),
        f"{prefix}c": torch.exp(0.3 * torch.randn(num_heads, num_gaussians, dtype=DTYPE)),
    }


def linear_params(name: str, d_in: int, d_out: int) -> dict[str, torch.Tensor]:
    """`nn.Linear` layout: weight `[out, in]` ~ randn / sqrt(in), bias ~ 0.1·randn."""
    return {
        f"{name}.weight": torch.randn(d_out, d_in, dtype=DTYPE) / math.sqrt(d_in),
        f"{name}.bias": 0.1 * torch.randn(d_out, dtype=DTYPE),
    }


def gqa_params(d_model: int, num_heads: int, num_kv_heads: int) -> dict[str, torch.Tensor]:
    d_kv = num_kv_heads * (d_model // num_heads)
    p: dict[str, torch.Tensor] = {}
    p.update(linear_params("q_proj", d_model, d_model))
    p.update(linear_params("k_proj", d_model, d_kv))
    p.update(linear_params("v_proj", d_model, d_kv))
    p.update(linear_params("out_proj", d_model, d_model))
    return p


GQA_NAMES = [f"{n}.{p}" for n in ("q_proj", "k_proj", "v_proj", "out_proj") for p in ("weight", "bias")]


def gqa_args(t: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The GQA parameters in `grouped_query_attention`'s argument order (wq, bq, ..., wo, bo)."""
    return [t[n] for n in GQA_NAMES]


# ---------------------------------------------------------------------------------------------
# Fixture cases
# ---------------------------------------------------------------------------------------------

# A forward takes the named tensors and returns (output, weights or None).
Forward = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class Fixture:
    name: str
    metadata: dict[str, str]
    tensors: dict[str, torch.Tensor]  # x first, then parameters; all differentiable
    forward: Forward


def daam_fixture(name: str, shape: tuple[int, int, int], num_heads: int, form: str, seed: int) -> Fixture:
    torch.manual_seed(seed)
    t = {"x": shifted_input(shape, axis=1)}
    t.update(daam_params(num_heads, shape[2]))

    def forward(t):
        return ref.density_adaptive_attention(t["x"], t["mean_offset"], t["scaled_variance"], num_heads, form)

    meta = {"kind": "daam", "num_heads": str(num_heads), "form": form, "seed": str(seed)}
    return Fixture(name, meta, t, forward)


def mixture_fixture(
    name: str, shape: tuple[int, ...], norm_axis: int, num_heads: int, num_gaussians: int, seed: int
) -> Fixture:
    torch.manual_seed(seed)
    t = {"x": shifted_input(shape, axis=norm_axis)}
    t.update(mixture_params(num_heads, num_gaussians))

    def forward(t):
        return ref.mixture_density_attention(t["x"], norm_axis, t["mean_offsets"], t["c"])

    sizes = ref.head_chunk_sizes(shape[norm_axis], num_heads)
    meta = {
        "kind": "mixture",
        "norm_axis": str(norm_axis),
        "num_heads": str(num_heads),
        "num_gaussians": str(num_gaussians),
        "eps": "1e-8",
        "chunk_sizes": ",".join(map(str, sizes)),
        "seed": str(seed),
    }
    return Fixture(name, meta, t, forward)


def density_block_fixture(
    name: str, shape: tuple[int, ...], norm_axis: int, num_heads: int, num_gaussians: int, num_layers: int, seed: int
) -> Fixture:
    torch.manual_seed(seed)
    t = {"x": shifted_input(shape, axis=norm_axis)}
    for j in range(num_layers):
        t.update(mixture_params(num_heads, num_gaussians, prefix=f"layers.{j}."))

    def forward(t):
        layers = [(t[f"layers.{j}.mean_offsets"], t[f"layers.{j}.c"]) for j in range(num_layers)]
        return ref.density_block(t["x"], norm_axis, layers), None

    meta = {
        "kind": "density_block",
        "norm_axis": str(norm_axis),
        "num_heads": str(num_heads),
        "num_gaussians": str(num_gaussians),
        "num_layers": str(num_layers),
        "eps": "1e-8",
        "seed": str(seed),
    }
    return Fixture(name, meta, t, forward)


def gqa_fixture(name: str, shape: tuple[int, int, int], num_heads: int, num_kv_heads: int, seed: int) -> Fixture:
    torch.manual_seed(seed)
    t = {"x": shifted_input(shape, axis=1)}
    t.update(gqa_params(shape[2], num_heads, num_kv_heads))

    def forward(t):
        return ref.grouped_query_attention(t["x"], *gqa_args(t), num_heads, num_kv_heads), None

    meta = {
        "kind": "gqa",
        "d_model": str(shape[2]),
        "num_heads": str(num_heads),
        "num_kv_heads": str(num_kv_heads),
        "seed": str(seed),
    }
    return Fixture(name, meta, t, forward)


def gqdaam_fixture(
    name: str,
    shape: tuple[int, int, int],
    num_daam_heads: int,
    d_embed: int,
    num_heads: int,
    num_kv_heads: int,
    seed: int,
) -> Fixture:
    torch.manual_seed(seed)
    t = {"x": shifted_input(shape, axis=1)}
    t.update(daam_params(num_daam_heads, shape[2]))
    t.update(linear_params("embed", shape[2], d_embed))
    t.update(gqa_params(d_embed, num_heads, num_kv_heads))

    def forward(t):
        out = ref.gq_daam(
            t["x"], t["mean_offset"], t["scaled_variance"], num_daam_heads,
            t["embed.weight"], t["embed.bias"], *gqa_args(t), num_heads, num_kv_heads,
        )
        return out, None

    meta = {
        "kind": "gqdaam",
        "num_daam_heads": str(num_daam_heads),
        "form": "variance",
        "d_model": str(shape[2]),
        "d_embed": str(d_embed),
        "num_heads": str(num_heads),
        "num_kv_heads": str(num_kv_heads),
        "seed": str(seed),
    }
    return Fixture(name, meta, t, forward)


def all_fixtures() -> list[Fixture]:
    return [
        daam_fixture("daam_b2_s24_d16_h8_var_s1", (2, 24, 16), 8, "variance", 1),
        daam_fixture("daam_b3_s6_d10_h1_var_s2", (3, 6, 10), 1, "variance", 2),
        daam_fixture("daam_b2_s12_d8_h4_std_s3", (2, 12, 8), 4, "stddev", 3),
        mixture_fixture("mixture_r3_axis2_h2_n3_s4", (2, 5, 12), 2, 2, 3, 4),
        mixture_fixture("mixture_r3_axis1_h3_n2_s5", (2, 7, 6), 1, 3, 2, 5),
        mixture_fixture("mixture_r4_axis1_h4_n3_s6", (2, 16, 5, 3), 1, 4, 3, 6),
        mixture_fixture("mixture_r3_axis1_h4_n2_chunk1_s7", (2, 5, 3), 1, 4, 2, 7),
        density_block_fixture("density_block_r4_axis1_h2_n3_l2_s8", (2, 8, 4, 3), 1, 2, 3, 2, 8),
        gqa_fixture("gqa_b2_s5_d16_q4_kv2_s9", (2, 5, 16), 4, 2, 9),
        gqa_fixture("gqa_b1_s7_d24_q6_kv3_s10", (1, 7, 24), 6, 3, 10),
        gqdaam_fixture("gqdaam_b2_s8_d12_s11", (2, 8, 12), 4, 16, 4, 2, 11),
    ]


# ---------------------------------------------------------------------------------------------
# Evaluation and writing
# ---------------------------------------------------------------------------------------------


def evaluate(fx: Fixture) -> dict[str, torch.Tensor]:
    """Forward, upstream gradient and autograd gradients, all in float64.

    Draws `grad_out` from the same generator right after the inputs and parameters.
    """
    # Round every input to float32 first: the fixture stores float32 inputs, and the answer must
    # be exact for *those* inputs (ill-conditioned cases, e.g. chunks of two, move by ~1e-4 when
    # the inputs are perturbed by float32 rounding).
    fx.tensors = {k: v.float().to(DTYPE) for k, v in fx.tensors.items()}
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in fx.tensors.items()}
    output, weights = fx.forward(leaves)
    grad_out = torch.randn(output.shape, dtype=DTYPE).float().to(DTYPE)
    # d/dθ sum(output * grad_out) = vector-Jacobian product with grad_out.
    grads = torch.autograd.grad(output, list(leaves.values()), grad_outputs=grad_out)

    result = dict(fx.tensors)
    result["output"] = output.detach()
    if weights is not None:
        result["weights"] = weights.detach()
    result["grad_out"] = grad_out
    for name, g in zip(leaves, grads):
        assert torch.isfinite(g).all(), f"{fx.name}: non-finite grad_{name}"
        if name == "k_proj.bias":
            # q·b_k is the same for every key, and softmax is shift-invariant, so this gradient
            # is exactly zero; autograd leaves ~1e-15 of rounding noise. Store the exact zero.
            assert g.abs().max() < 1e-12, f"{fx.name}: grad_k_proj.bias should vanish"
            g = torch.zeros_like(g)
        result[f"grad_{name}"] = g
    for name, v in result.items():
        assert v.dtype == DTYPE and torch.isfinite(v).all(), f"{fx.name}: bad tensor {name}"
    return result


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """Serialise float32 tensors in the safetensors format, byte for byte reproducibly.

    `safetensors.torch.save_file` writes the metadata map in hash order, so regenerating would
    change the files' bytes even when nothing else does. Here the header keys are sorted:
    8-byte little-endian header length, JSON header (space-padded to a multiple of 8), then the
    tensors' little-endian data in the header's order.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        assert t.dtype == torch.float32
        data = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write(fx: Fixture, tensors: dict[str, torch.Tensor]) -> Path:
    path = FIXTURE_DIR / f"{fx.name}.safetensors"
    meta = dict(fx.metadata)
    meta["computed_in"] = "float64"
    meta["generator"] = "tools/make_daam_fixtures.py"
    f32 = {k: v.to(torch.float32) for k, v in tensors.items()}
    path.write_bytes(safetensors_bytes(f32, meta))
    # Read it back with the safetensors library: same metadata, same tensors.
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == meta and set(f.keys()) == set(f32)
        for k, v in f32.items():
            assert torch.equal(f.get_tensor(k), v), f"{path.name}: {k} did not round-trip"
    return path


def float32_error(fx: Fixture, tensors: dict[str, torch.Tensor]) -> float:
    """How far a float32 PyTorch recomputation lands from the fixture (a tolerance guide).

    Recomputes output and gradients in float32 from the rounded float32 inputs and returns the
    largest max|got − want| / max|want| over `output` and every `grad_<name>`.
    """
    f32 = {k: v.to(torch.float32) for k, v in tensors.items()}
    leaves = {k: f32[k].clone().requires_grad_(True) for k in fx.tensors}
    output, _ = fx.forward(leaves)
    grads = torch.autograd.grad(output, list(leaves.values()), grad_outputs=f32["grad_out"])
    worst = 0.0
    for name, got in [("output", output)] + [(f"grad_{k}", g) for k, g in zip(leaves, grads)]:
        want = f32[name]
        scale = want.abs().max().item()
        if scale > 0:
            worst = max(worst, ((got - want).abs().max() / scale).item())
    return worst


def write_readme(rows: list[tuple[Fixture, dict[str, torch.Tensor], int, float]]) -> None:
    lines = [
        "# `daam` test fixtures",
        "",
        "Generated by `tools/make_daam_fixtures.py` from the PyTorch reference `tools/daam_reference.py`.",
        "Do not edit by hand. To regenerate (from the repository root):",
        "",
        "```sh",
        "pip install -r tools/requirements.txt   # torch 2.5.1, numpy 2.1.3, safetensors 0.4.5",
        "/work/pyvenv/bin/python tools/make_daam_fixtures.py",
        "```",
        "",
        "Each file is computed in float64 and stored as float32 (the exact answer rounded once).",
        "The files are written with sorted headers, so regenerating them is byte-for-byte",
        "reproducible (with the pinned torch, on the same kind of CPU).",
        "The configuration is in the safetensors metadata (a string map: `kind`, `seed`, head counts,",
        "`form`, `norm_axis`, ...). `torch.manual_seed(seed)` is set per fixture; x, then the",
        "parameters, then `grad_out` are drawn in that order.",
        "",
        "## Tensor names",
        "",
        "- `x`: the input; `output`: the forward result; `weights`: the attention weights w (DAAM) or",
        "  the mixture (mixture attention), where the function returns them.",
        "- `grad_out`: a random upstream gradient, same shape as `output`.",
        "- `grad_<name>`: the gradient of `sum(output * grad_out)` with respect to tensor `<name>`",
        "  (`grad_x` and one per parameter).",
        "- DAAM: `mean_offset` (δ), `scaled_variance` (ξ), both `[num_heads, d_model]`.",
        "- Mixture: `mean_offsets`, `c`, both `[num_heads, num_gaussians]`. Density block:",
        "  `layers.<j>.mean_offsets`, `layers.<j>.c` (grads `grad_layers.<j>.mean_offsets`, ...).",
        "- GQA: `q_proj.weight`, `q_proj.bias`, `k_proj.*`, `v_proj.*`, `out_proj.*` in PyTorch",
        "  `nn.Linear` layout (weight `[out, in]`, y = x Wᵀ + b).",
        "- GQDAAM: the DAAM and GQA names plus `embed.weight`, `embed.bias`.",
        "- `grad_k_proj.bias` is exactly zero (softmax is shift-invariant) and stored as zeros.",
        "",
        "## Files",
        "",
        "`f32 err` is how far PyTorch's own float32 recomputation (from the stored float32 inputs)",
        "lands from the fixture: the largest max|got − want| / max|want| over `output` and all",
        "gradients. A float32 implementation should expect errors of that order; DAAM with 3",
        "positions per head (and mixture chunks of 2) is the least well conditioned.",
        "",
        "| file | kind | x shape | config | bytes | f32 err |",
        "|---|---|---|---|---|---|",
    ]
    for fx, tensors, size, err in rows:
        cfg = ", ".join(
            f"{k}={v}" for k, v in fx.metadata.items() if k not in ("kind", "computed_in", "generator")
        )
        shape = "×".join(map(str, tensors["x"].shape))
        lines.append(
            f"| `{fx.name}.safetensors` | {fx.metadata['kind']} | {shape} | {cfg} | {size} | {err:.1e} |"
        )
    lines.append("")
    (FIXTURE_DIR / "README.md").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def authors_multihead_daam(x, mean_offset, scaled_variance, num_heads, form):
    """Literal port of the authors' per-head loop (`MultiHeadDAAM` + `DAAM`, IEMOCAP/DAAMv1.py)."""
    group = x.shape[1] // num_heads
    outs = []
    for h in range(num_heads):
        y = x[:, h * group:(h + 1) * group, :]
        mean = y.mean(dim=1, keepdim=True)
        mean_x2 = (y ** 2).mean(dim=1, keepdim=True)
        var = abs(mean_x2 - mean ** 2) + 1e-8
        y_norm = (y - (mean + mean_offset[h:h + 1])) / torch.sqrt(var + 1e-5)
        c = scaled_variance[h:h + 1]
        w = torch.exp(-(y_norm ** 2 / (2 * c))) if form == "variance" else torch.exp(-(y_norm ** 2 / (2 * c ** 2)))
        outs.append(y * w)
    return torch.cat(outs, dim=1)


def self_check() -> None:
    def leaf(t):
        return t.detach().clone().requires_grad_(True)

    torch.manual_seed(1234)

    # DAAM: gradcheck (both forms) and agreement with the authors' loop.
    for form in ref.GAUSSIAN_FORMS:
        x = leaf(shifted_input((2, 6, 3), axis=1))
        p = daam_params(2, 3)
        d, xi = leaf(p["mean_offset"]), leaf(p["scaled_variance"])
        assert torch.autograd.gradcheck(
            lambda x, d, xi: ref.density_adaptive_attention(x, d, xi, 2, form), (x, d, xi)
        ), f"DAAM gradcheck ({form})"
        out, _ = ref.density_adaptive_attention(x, d, xi, 2, form)
        assert torch.allclose(out, authors_multihead_daam(x, d, xi, 2, form), rtol=1e-12, atol=1e-14)

    # Mixture: gradcheck, including uneven chunks (2,2,3) and chunks of one element (1,1,1,2).
    for shape, axis, heads, gaussians in [((2, 7, 3), 1, 3, 2), ((2, 5, 3), 1, 4, 2), ((3, 2, 8), -1, 2, 3)]:
        x = leaf(shifted_input(shape, axis=axis))
        p = mixture_params(heads, gaussians)
        m, c = leaf(p["mean_offsets"]), leaf(p["c"])
        assert torch.autograd.gradcheck(
            lambda x, m, c: ref.mixture_density_attention(x, axis, m, c), (x, m, c)
        ), f"mixture gradcheck {shape} axis {axis}"
        out, mixture = ref.mixture_density_attention(x, axis, m, c)
        # Each head's mixture sums to one along the axis within its chunk.
        start = 0
        for size in ref.head_chunk_sizes(shape[axis], heads):
            s = mixture.narrow(axis % len(shape), start, size).sum(dim=axis)
            assert torch.allclose(s, torch.ones_like(s), atol=1e-12)
            start += size

    # Softmax mixture == authors' product of normalised Gaussians / sum, where nothing underflows.
    # Chunks of at least 4 elements: in a chunk of 2 nearly equal values σ is tiny and m/σ huge,
    # so the product underflows (and a chunk of one gives NaN); that case is checked below.
    for shape, axis, heads, gaussians in [((2, 5, 12), 2, 2, 3), ((2, 9, 6), 1, 2, 2), ((2, 16, 5, 3), 1, 4, 3)]:
        x = shifted_input(shape, axis=axis)
        p = mixture_params(heads, gaussians)
        _, mixture = ref.mixture_density_attention(x, axis, p["mean_offsets"], p["c"])
        product = ref.mixture_product_form(x, axis, p["mean_offsets"], p["c"])
        assert torch.isfinite(product).all() and (product > 1e-200).all(), "product form underflowed"
        assert torch.allclose(mixture, product, rtol=1e-10, atol=1e-14), "softmax != product-of-Gaussians"

    # Where the product underflows (near-constant chunk: every Gaussian ~ exp(-m²/(2c²σ²)) = 0),
    # the authors' form returns all-zero weights; the softmax form stays finite and sums to one.
    x = torch.tensor([[1.0, 1.0 + 1e-9, 1.0 - 1e-9, 1.0]])
    m, c = torch.tensor([[0.3]]), torch.tensor([[1.0]])
    product = ref.mixture_product_form(x, 1, m, c)
    _, mixture = ref.mixture_density_attention(x, 1, m, c)
    assert (product == 0).all(), "expected the product form to underflow here"
    assert torch.isfinite(mixture).all() and torch.allclose(mixture.sum(), torch.tensor(1.0))

    # Density block gradcheck (two layers).
    x = leaf(shifted_input((2, 6, 2, 2), axis=1))
    layers = [mixture_params(2, 3), mixture_params(2, 3)]
    params = [leaf(layers[j][k]) for j in range(2) for k in ("mean_offsets", "c")]
    assert torch.autograd.gradcheck(
        lambda x, m0, c0, m1, c1: ref.density_block(x, 1, [(m0, c0), (m1, c1)]), (x, *params)
    ), "density block gradcheck"

    # GQA: against PyTorch's SDPA (enable_gqa, repeat_interleave semantics), and gradcheck.
    batch, seq, d_model, heads, kv = 2, 5, 12, 6, 2
    x = shifted_input((batch, seq, d_model), axis=1)
    g = gqa_params(d_model, heads, kv)
    ours = ref.grouped_query_attention(x, *gqa_args(g), heads, kv)
    hd = d_model // heads
    q = ref.linear(x, g["q_proj.weight"], g["q_proj.bias"]).reshape(batch, seq, heads, hd).transpose(1, 2)
    k = ref.linear(x, g["k_proj.weight"], g["k_proj.bias"]).reshape(batch, seq, kv, hd).transpose(1, 2)
    v = ref.linear(x, g["v_proj.weight"], g["v_proj.bias"]).reshape(batch, seq, kv, hd).transpose(1, 2)
    sdpa = F.scaled_dot_product_attention(q, k, v, enable_gqa=True).transpose(1, 2).reshape(batch, seq, d_model)
    sdpa = ref.linear(sdpa, g["out_proj.weight"], g["out_proj.bias"])
    assert torch.allclose(ours, sdpa, rtol=1e-10, atol=1e-12), "GQA != SDPA(enable_gqa)"
    xs = [leaf(x)] + [leaf(g[n]) for n in GQA_NAMES]
    assert torch.autograd.gradcheck(
        lambda x, *w: ref.grouped_query_attention(x, *w, heads, kv), tuple(xs)
    ), "GQA gradcheck"

    # GQDAAM gradcheck (x, δ, ξ and the embedding; GQA weights held fixed to keep it short).
    x = leaf(shifted_input((1, 4, 3), axis=1))
    p = daam_params(2, 3)
    e = linear_params("embed", 3, 4)
    g = gqa_params(4, 2, 1)
    args = (x, leaf(p["mean_offset"]), leaf(p["scaled_variance"]), leaf(e["embed.weight"]), leaf(e["embed.bias"]))
    assert torch.autograd.gradcheck(
        lambda x, d, xi, we, be: ref.gq_daam(x, d, xi, 2, we, be, *gqa_args(g), 2, 1), args
    ), "GQDAAM gradcheck"

    print("self-check: ok (gradcheck DAAM/mixture/density block/GQA/GQDAAM, product form, SDPA)")


def main() -> None:
    torch.set_default_dtype(DTYPE)
    self_check()
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    total = 0
    for fx in all_fixtures():
        tensors = evaluate(fx)
        path = write(fx, tensors)
        size = os.path.getsize(path)
        total += size
        err = float32_error(fx, tensors)
        rows.append((fx, tensors, size, err))
        print(f"wrote {path.relative_to(REPO_ROOT)} ({size} bytes, {len(tensors)} tensors, f32 err {err:.1e})")
    write_readme(rows)
    print(f"total {total} bytes in {len(rows)} files")
    assert total < 150_000, "fixtures grew past ~150 KB"


if __name__ == "__main__":
    main()
