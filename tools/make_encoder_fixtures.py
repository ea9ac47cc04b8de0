"""Tiny random-weight Hugging Face checkpoints and their per-layer hidden states, for the parity
tests of the `encoders` crate (issue #5).

Dev-time only; offline (no hub). Versions are pinned in `tools/requirements-encoders.txt`:
transformers 4.46.3 is the 4.x line the paper used. Its hidden-state convention, which the Rust
ports reproduce:

- WavLM (stable layer norm): `hidden_states[0]` is the input to layer 0 (after the positional
  convolution), `hidden_states[i]` the raw output of layer i for i < L, and `hidden_states[L]` the
  last layer's output *after* `encoder.layer_norm` (equal to `last_hidden_state`).
- BEiT: `hidden_states[0]` is the embedding output, then the raw layer outputs; no final norm.
- Llama: `hidden_states[0]` is the token embedding, the last entry is after the final RMSNorm.

Writes, for each model, `encoders/tests/fixtures/<name>/`: `config.json`, `model.safetensors`
(the `save_pretrained` output) and `reference.safetensors` with the inputs, `hidden_states`
`[L+1, B, T, H]`, `attention_mask` where there is one, and `pooled` `[B, L, H]`: the mean over
valid positions of layers 1..=L (the embedding output dropped), which is what `classify extract`
stores. Run from the repository root:

    python tools/make_encoder_fixtures.py
"""

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, normalizers, processors  # noqa: E402
from tokenizers.models import BPE  # noqa: E402
from transformers import (  # noqa: E402
    BeitConfig,
    BeitModel,
    LlamaConfig,
    LlamaModel,
    WavLMConfig,
    WavLMModel,
)

OUT = "encoders/tests/fixtures"


def perturb(model, names=("lambda", "relative_position_bias_table", "gru_rel_pos_const", "rel_attn_embed")):
    """Randomise the parameters whose initial values are neutral (ones, zeros, small constants),
    so that the parity tests exercise them."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(k in n for k in names):
                p.normal_(0, 0.5)
            elif p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)


# Standard deviation of the redrawn query and key projection weights. Hugging Face's initialiser
# (N(0, 0.02)) leaves attention almost uniform at these widths, and the parity tests then miss
# errors in the attention logits: with it, a 1 % error in the attention scale passed every parity
# test. With 0.3 the logits spread over a few units and every query attends mostly to a few keys,
# and a 1 % error in the scale moves the hidden states by 1.0e-4 (WavLM) to 4.4e-3 (Llama) relative
# error, above the tests' 1e-4 (with 0.02: 1.1e-6 to 7.6e-5). Sharper is not better: at 0.4 the
# softmax saturates and WavLM's and BEiT's sensitivity falls below 1e-4 again.
QK_STD = 0.3


def sharpen(model):
    """Redraw the query and key projection weights with `QK_STD`, so that the attention weights
    are far from uniform and the parity tests see the attention logits."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 2 and any(n.endswith(k) for k in (".query.weight", ".key.weight", "q_proj.weight", "k_proj.weight")):
                p.normal_(0, QK_STD)


def attention_peak(model, inputs):
    """The mean over layers, heads and queries of each query's largest attention weight (1/T for
    uniform attention), printed so that a fixture's attention can be checked."""
    with torch.no_grad():
        o = model(**inputs, output_attentions=True)
    peaks = [a.max(-1).values.mean().item() for a in o.attentions]
    keys = o.attentions[0].shape[-1]
    return f"attention peak {', '.join(f'{p:.2f}' for p in peaks)} (uniform {1 / keys:.2f})"


def dump(name, model, inputs, mask=None, extra=None):
    model.eval()
    d = f"{OUT}/{name}"
    model.save_pretrained(d, safe_serialization=True)
    with torch.no_grad():
        o = model(**inputs, output_hidden_states=True)
    hs = torch.stack(o.hidden_states, 0)  # (L+1, B, T, H)
    layers = hs[1:].permute(1, 0, 2, 3)  # (B, L, T, H)
    if mask is None:
        pooled = layers.mean(2)
    else:
        m = mask[:, None, :, None].to(layers.dtype)
        pooled = (layers * m).sum(2) / m.sum(2)
    t = {k: v.contiguous() for k, v in inputs.items()}
    t["hidden_states"] = hs.contiguous()
    t["pooled"] = pooled.contiguous()
    if mask is not None:
        t["valid"] = mask.clone().to(torch.int64).contiguous()
    if extra:
        t.update(extra)
    save_file(t, f"{d}/reference.safetensors")
    print(name, tuple(hs.shape), "pooled", tuple(pooled.shape), attention_peak(model, inputs))


def beit(name, shared):
    cfg = BeitConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        use_relative_position_bias=not shared,
        use_shared_relative_position_bias=shared,
        use_absolute_position_embeddings=False,
        use_mean_pooling=True,
        layer_scale_init_value=0.1,
        attn_implementation="eager",
    )
    model = BeitModel(cfg, add_pooling_layer=True)
    perturb(model)
    sharpen(model)
    dump(name, model, {"pixel_values": torch.randn(2, 3, 32, 32)})


def wavlm():
    cfg = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 2, 2),
        conv_kernel=(10, 3, 3),
        conv_bias=False,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=64,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    model = WavLMModel(cfg)
    perturb(model)
    sharpen(model)
    wave = torch.randn(2, 1600)
    dump("wavlm", model, {"input_values": wave})
    # Padding: the second clip is 1200 samples, zero-padded to 1600, with an attention mask.
    padded = wave.clone()
    padded[1, 1200:] = 0.0
    mask = torch.ones(2, 1600, dtype=torch.int64)
    mask[1, 1200:] = 0
    model.eval()
    frames = model._get_feat_extract_output_lengths(mask.sum(-1))
    n = int(model._get_feat_extract_output_lengths(torch.tensor(1600)))
    valid = (torch.arange(n)[None, :] < frames[:, None]).to(torch.int64)
    d = f"{OUT}/wavlm"
    with torch.no_grad():
        o = model(input_values=padded, attention_mask=mask, output_hidden_states=True)
    hs = torch.stack(o.hidden_states, 0)
    layers = hs[1:].permute(1, 0, 2, 3)
    m = valid[:, None, :, None].to(layers.dtype)
    pooled = (layers * m).sum(2) / m.sum(2)
    save_file(
        {
            "input_values": padded.contiguous(),
            "attention_mask": mask.contiguous(),
            "valid": valid.contiguous(),
            "hidden_states": hs.contiguous(),
            "pooled": pooled.contiguous(),
        },
        f"{d}/reference_masked.safetensors",
    )
    print("wavlm masked", tuple(hs.shape), "frames", frames.tolist())


def llama_tokenizer():
    """A Llama-2-shaped `tokenizer.json`: BPE with byte fallback, the "▁" space normaliser and a
    `<s> $A` post-processor, over a small vocabulary."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    pieces = ["▁", "t", "h", "e", "a", "n", "o", "s", "r", "i", "w", "d", "l", "c", "u", "m", "p", "g", "k", "."]
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("a", "n"), ("▁", "a"), ("o", "n"), ("▁", "s"), ("e", "s")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken("<unk>", special=True), AddedToken("<s>", special=True), AddedToken("</s>", special=True)])
    return tok, len(vocab)


def llama():
    tok, vocab_size = llama_tokenizer()
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        attn_implementation="eager",
    )
    model = LlamaModel(cfg)
    perturb(model)
    sharpen(model)
    texts = ["the sand is wet.", "Ünïcode ok"]
    enc = [tok.encode(t).ids for t in texts]
    width = max(len(e) for e in enc)
    ids = torch.zeros(len(enc), width, dtype=torch.int64)
    mask = torch.zeros(len(enc), width, dtype=torch.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    extra = {"text_lengths": torch.tensor([len(e) for e in enc])}
    dump("llama", model, {"input_ids": ids, "attention_mask": mask}, mask=mask, extra=extra)
    tok.save(f"{OUT}/llama/tokenizer.json")
    with open(f"{OUT}/llama/texts.json", "w") as f:
        json.dump({"texts": texts, "ids": enc}, f, ensure_ascii=False, indent=1)
    print("llama token ids", enc)


if __name__ == "__main__":
    torch.manual_seed(0)
    beit("beit", shared=False)
    beit("beit-shared", shared=True)
    wavlm()
    llama()
