"""PyTorch reference implementations of the `daam` crate's modules.

Dev-time only: these functions define the exact numbers the Rust/burn implementation is tested
against (see `tools/make_daam_fixtures.py`, which writes `daam/tests/fixtures/*.safetensors`).
They are written for clarity, not speed, and work in any float dtype (fixtures use float64).

Background: `shared/DESIGN.md` section "daam" and `shared/reference/daam-reference.md` §1-3
(paper arXiv 2401.11143 Alg. 1-4; the authors' `DAAM`/`MultiHeadDAAM`, `GaussianBlock`, GQDAAM).

Functions
---------
- `density_adaptive_attention`: per-feature single-Gaussian DAAM (paper Alg. 1 and 3).
- `mixture_density_attention`: multi-head product-of-Gaussians attention along any axis
  (paper App. B, Alg. 2), in its stable softmax form.
- `density_block`: stacked mixture layers with residual (paper Alg. 4).
- `grouped_query_attention`: standard GQA (the intended form, not the authors' double-scaled one).
- `gq_daam`: DAAM -> Linear -> GQA (paper §1.3).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

# Constants of the per-feature DAAM (authors' `DAAM`: `abs(var) + 1e-8`, `eps=1e-5` in the sqrt).
DAAM_VAR_FLOOR = 1e-8
DAAM_EPS = 1e-5

GAUSSIAN_FORMS = ("variance", "stddev")


def density_adaptive_attention(
    x: Tensor,
    mean_offset: Tensor,
    scaled_variance: Tensor,
    num_heads: int,
    form: str = "variance",
) -> tuple[Tensor, Tensor]:
    """Per-feature Density Adaptive Attention (paper Alg. 1 and 3; authors' `MultiHeadDAAM`).

    Args:
        x: `[batch, seq, d_model]`.
        mean_offset: δ, `[num_heads, d_model]`.
        scaled_variance: ξ, `[num_heads, d_model]`.
        num_heads: H; splits the *seq* axis into H contiguous chunks of G = seq / H positions.
        form: "variance" (2ξ, the code and Alg. 1) or "stddev" (2ξ², the paper text).

    For each batch item b, head h and feature d, over the chunk's G positions g:

        μ   = mean_g(x)
        var = |mean_g(x²) − μ²| + 1e-8
        y   = (x − (μ + δ[h, d])) / sqrt(var + 1e-5)
        w   = exp(−y² / (2 ξ[h, d]))      (form "variance")
        w   = exp(−y² / (2 ξ[h, d]²))     (form "stddev")

    Returns:
        `(x ⊙ w, w)`, both `[batch, seq, d_model]`. No residual, no normalisation of w.
    """
    if form not in GAUSSIAN_FORMS:
        raise ValueError(f"form must be one of {GAUSSIAN_FORMS}, got {form!r}")
    batch, seq, d_model = x.shape
    if seq % num_heads != 0:
        raise ValueError(f"num_heads={num_heads} must divide seq={seq}")
    group = seq // num_heads
    assert mean_offset.shape == (num_heads, d_model)
    assert scaled_variance.shape == (num_heads, d_model)

    # [batch, head, G, d_model]: contiguous chunks of the seq axis.
    xh = x.reshape(batch, num_heads, group, d_model)
    mu = xh.mean(dim=2, keepdim=True)
    var = ((xh * xh).mean(dim=2, keepdim=True) - mu * mu).abs() + DAAM_VAR_FLOOR

    # Parameters broadcast over batch and positions: [1, head, 1, d_model].
    delta = mean_offset[None, :, None, :]
    xi = scaled_variance[None, :, None, :]

    y = (xh - (mu + delta)) / torch.sqrt(var + DAAM_EPS)
    denom = 2.0 * xi if form == "variance" else 2.0 * xi * xi
    w = torch.exp(-(y * y) / denom)

    w = w.reshape(batch, seq, d_model)
    return x * w, w


def head_chunk_sizes(n: int, num_heads: int) -> list[int]:
    """Chunk sizes of the mixture heads along an axis of length n.

    Each head gets `n // num_heads` contiguous entries and the LAST head also takes the
    remainder (authors' `x.narrow` split), e.g. n=7, H=3 -> [2, 2, 3]; n=5, H=4 -> [1, 1, 1, 2].
    """
    base = n // num_heads
    if base == 0:
        raise ValueError(f"num_heads={num_heads} exceeds axis length {n}")
    return [base] * (num_heads - 1) + [n - base * (num_heads - 1)]


def _mixture_head(x: Tensor, axis: int, m: Tensor, c: Tensor, eps: float) -> Tensor:
    """Softmax mixture weights of one head over one chunk (see `mixture_density_attention`)."""
    n_chunk = x.shape[axis]
    mu = x.mean(dim=axis, keepdim=True)
    if n_chunk > 1:
        # Unbiased variance (divide by n_chunk - 1), as torch.var's default in the authors' code.
        var = x.var(dim=axis, keepdim=True, unbiased=True) + eps
    else:
        # Our definition for a chunk of one element (the authors' code gives NaN here):
        # the unbiased variance is taken as 0, so var = eps. The softmax over a single
        # element is then exactly 1 whatever the logit, and its gradient is 0.
        var = torch.full_like(mu, eps)

    centered = x - mu
    logit = torch.zeros_like(x)
    for i in range(m.shape[0]):
        diff = centered - m[i]
        logit = logit - diff * diff / (2.0 * c[i] * c[i] * var)
    return torch.softmax(logit, dim=axis)


def mixture_density_attention(
    x: Tensor,
    norm_axis: int,
    mean_offsets: Tensor,
    c: Tensor,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """Multi-head mixture (product-of-Gaussians) density attention (paper App. B, Alg. 2).

    Args:
        x: any rank.
        norm_axis: the axis the statistics and the normalisation run along.
        mean_offsets: m, `[num_heads, num_gaussians]` (scalars per Gaussian).
        c: `[num_heads, num_gaussians]` (scalars per Gaussian; only c² is used).
        eps: variance floor, 1e-8 as in the authors' code.

    The heads split `norm_axis` into contiguous chunks (`head_chunk_sizes`: size n // H, the last
    head takes the remainder). Per head h, along the chunk (keepdim):

        μ  = mean(x)
        σ² = unbiased var(x) + eps         (σ² = eps for a chunk of one element)
        ℓ  = Σ_i −(x − μ − m[h,i])² / (2 c[h,i]² σ²)
        mixture = softmax_{norm_axis}(ℓ)   within the chunk
        output  = x ⊙ mixture

    The softmax equals the authors' product of normalised Gaussians
    Π_i exp(−y_i²/(2c_i²)) / sqrt(2π c_i²), y_i = (x − μ − m_i)/σ, divided by its sum along the
    axis (the constant factors cancel), computed without underflow.

    Returns:
        `(output, mixture)`, the heads concatenated back along `norm_axis`.
    """
    axis = norm_axis % x.dim()
    num_heads = mean_offsets.shape[0]
    assert c.shape == mean_offsets.shape

    outputs, mixtures = [], []
    start = 0
    for h, size in enumerate(head_chunk_sizes(x.shape[axis], num_heads)):
        chunk = x.narrow(axis, start, size)
        mixture = _mixture_head(chunk, axis, mean_offsets[h], c[h], eps)
        outputs.append(chunk * mixture)
        mixtures.append(mixture)
        start += size
    return torch.cat(outputs, dim=axis), torch.cat(mixtures, dim=axis)


def mixture_product_form(
    x: Tensor, norm_axis: int, mean_offsets: Tensor, c: Tensor, eps: float = 1e-8
) -> Tensor:
    """The authors' literal mixture weights (paper Alg. 2, `GaussianBlock.py` L32-42).

    Product of normalised Gaussians Π_i exp(−y_i²/(2c_i²)) / sqrt(2π c_i²) divided by its sum
    along the axis (clamped at eps). Used only to cross-check `mixture_density_attention` where
    nothing underflows; it underflows for large |y| where the softmax form does not.
    """
    axis = norm_axis % x.dim()
    out = []
    start = 0
    for h, size in enumerate(head_chunk_sizes(x.shape[axis], mean_offsets.shape[0])):
        chunk = x.narrow(axis, start, size)
        mu = chunk.mean(dim=axis, keepdim=True)
        var = chunk.var(dim=axis, keepdim=True) + eps
        mixture = torch.ones_like(chunk)
        for i in range(mean_offsets.shape[1]):
            y = (chunk - (mu + mean_offsets[h, i])) / torch.sqrt(var)
            ci = c[h, i]
            mixture = mixture * torch.exp(-(y * y) / (2 * ci * ci)) / torch.sqrt(2 * math.pi * ci * ci)
        mixture = mixture / mixture.sum(dim=axis, keepdim=True).clamp(min=eps)
        out.append(mixture)
        start += size
    return torch.cat(out, dim=axis)


def density_block(
    x: Tensor, norm_axis: int, layers: Sequence[tuple[Tensor, Tensor]], eps: float = 1e-8
) -> Tensor:
    """Density Block (paper Alg. 4; authors' `GaussianBlock`/`DensityBlock`).

    `layers` is a list of `(mean_offsets, c)`, each `[num_heads, num_gaussians]`. For each layer:

        x ← mixture_density_attention(x, norm_axis, m, c)[0] + x
    """
    for mean_offsets, c in layers:
        x = mixture_density_attention(x, norm_axis, mean_offsets, c, eps)[0] + x
    return x


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """PyTorch `nn.Linear` layout: weight `[out, in]`, y = x Wᵀ + b."""
    y = x @ weight.T
    return y if bias is None else y + bias


def grouped_query_attention(
    x: Tensor,
    wq: Tensor,
    bq: Tensor,
    wk: Tensor,
    bk: Tensor,
    wv: Tensor,
    bv: Tensor,
    wo: Tensor,
    bo: Tensor,
    num_heads: int,
    num_kv_heads: int,
) -> Tensor:
    """Grouped-query self-attention (the intended GQA; DESIGN.md "GroupedQueryAttention").

    Args:
        x: `[batch, seq, d_model]`.
        wq `[d_model, d_model]`, wk/wv `[num_kv_heads·head_dim, d_model]`, wo `[d_model, d_model]`
        and their biases, in `nn.Linear` layout.
        num_heads: query heads; head_dim = d_model / num_heads.
        num_kv_heads: shared key/value heads; must divide num_heads.

    Query head h uses key/value head h // (num_heads // num_kv_heads) (contiguous groups, as
    `repeat_interleave`). Per head: softmax(q kᵀ / sqrt(head_dim)) v; the heads are
    concatenated back to `[batch, seq, d_model]` and projected by wo, bo.
    """
    batch, seq, d_model = x.shape
    if d_model % num_heads != 0 or num_heads % num_kv_heads != 0:
        raise ValueError("num_heads must divide d_model and num_kv_heads must divide num_heads")
    head_dim = d_model // num_heads
    group = num_heads // num_kv_heads

    # [batch, heads, seq, head_dim]
    q = linear(x, wq, bq).reshape(batch, seq, num_heads, head_dim).transpose(1, 2)
    k = linear(x, wk, bk).reshape(batch, seq, num_kv_heads, head_dim).transpose(1, 2)
    v = linear(x, wv, bv).reshape(batch, seq, num_kv_heads, head_dim).transpose(1, 2)
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)

    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    attn = torch.softmax(scores, dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(batch, seq, d_model)
    return linear(out, wo, bo)


def gq_daam(
    x: Tensor,
    mean_offset: Tensor,
    scaled_variance: Tensor,
    num_daam_heads: int,
    w_embed: Tensor,
    b_embed: Tensor,
    wq: Tensor,
    bq: Tensor,
    wk: Tensor,
    bk: Tensor,
    wv: Tensor,
    bv: Tensor,
    wo: Tensor,
    bo: Tensor,
    num_heads: int,
    num_kv_heads: int,
) -> Tensor:
    """GQDAAM front end (paper §1.3; authors' `GQDAAM.py`).

        x[B, L, d_model] → density_adaptive_attention (form "variance", num_daam_heads)
                         → Linear(d_model → d_embed) (w_embed `[d_embed, d_model]`)
                         → grouped_query_attention(d_embed, num_heads, num_kv_heads)
    """
    h, _ = density_adaptive_attention(x, mean_offset, scaled_variance, num_daam_heads, "variance")
    h = linear(h, w_embed, b_embed)
    return grouped_query_attention(h, wq, bq, wk, bk, wv, bv, wo, bo, num_heads, num_kv_heads)
