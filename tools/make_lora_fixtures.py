"""Reference logits of Hugging Face's sequence-classification heads, with and without LoRA
adapters, on the tiny encoder fixtures, for `encoders/tests/lora.rs` (issue #5, item 4).

Dev-time only; offline. Versions pinned in `tools/requirements-encoders.txt` (torch 2.5.1,
transformers 4.46.3). Run from the repository root after `tools/make_encoder_fixtures.py`:

    python tools/make_lora_fixtures.py

For each of `wavlm`, `beit`, `llama` it builds `WavLMForSequenceClassification` /
`BeitForImageClassification` / `LlamaForSequenceClassification` from the fixture's weights with a
seeded 3-way head (weights scaled up and biases perturbed so that they matter; WavLM's `classifier_proj_size` is 7,
not the default 256, to check it is read), and writes `encoders/tests/fixtures/<name>-classifier/`:
`config.json` and `model.safetensors` (the `save_pretrained` output: encoder under `wavlm.` /
`beit.` / `model.`, head at the root) and `reference.safetensors` with

- the inputs (WavLM: the padded batch and its sample mask; BEiT: pixels; Llama: ids, mask and
  lengths),
- `logits` `[batch, 3]`,
- LoRA adapters on the query and value projections of every layer, `lora.<layer>.<query|value>.a`
  `[d_in, r]` and `.b` `[r, d_out]` (both random, so the adapters change the output), their scale
  `lora_scale`, and `logits_lora`: the logits with `W x + s · B(A x)` in those projections.

The adapted logits are computed by merging `s · (A B)ᵀ` into the projection weights. Merging is
exact, and it is the only way to reach WavLM's projections: transformers 4.46.3's
`WavLMAttention` reads `q_proj.weight` directly (`F.multi_head_attention_forward`), so hooks on the
`q_proj` module never run.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    BeitForImageClassification,
    LlamaForSequenceClassification,
    WavLMForSequenceClassification,
)

FIXTURES = "encoders/tests/fixtures"
NUM_LABELS = 3
RANK = 2
# The paper's convention (scale α); the Rust test uses LoraScaling::Paper with this α.
ALPHA = 4.0


def perturb_head(model, names):
    """Head weights of unit-scale outputs (transformers' N(0, 0.02²) start would make the logits
    nearly the biases) and nonzero biases."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(n.startswith(k) for k in names):
                if n.endswith("bias"):
                    p.normal_(0, 0.2)
                else:
                    p.normal_(0, 3.0 / p.shape[1] ** 0.5)


def lora_adapters(layers, projections):
    """Random A, B for every (layer, target) and the merged weights' updates."""
    tensors = {}
    for i, layer in enumerate(layers):
        for target, linear in projections(layer):
            d_out, d_in = linear.weight.shape
            a = torch.randn(d_in, RANK) / RANK**0.5
            b = torch.randn(RANK, d_out) * 0.1
            tensors[f"lora.{i}.{target}.a"] = a
            tensors[f"lora.{i}.{target}.b"] = b
    return tensors


def merged_logits(model, layers, projections, adapters, run):
    """The logits with s·(A B)ᵀ added to every adapted projection; the weights are restored."""
    saved = []
    with torch.no_grad():
        for i, layer in enumerate(layers):
            for target, linear in projections(layer):
                a = adapters[f"lora.{i}.{target}.a"]
                b = adapters[f"lora.{i}.{target}.b"]
                saved.append((linear, linear.weight.clone()))
                linear.weight.add_(ALPHA * (a @ b).T)
        logits = run(model)
        for linear, weight in saved:
            linear.weight.copy_(weight)
    return logits


def write(name, model, layers, projections, inputs, run):
    model.eval()
    out = f"{FIXTURES}/{name}-classifier"
    model.save_pretrained(out, safe_serialization=True)
    with torch.no_grad():
        logits = run(model)
    adapters = lora_adapters(layers, projections)
    logits_lora = merged_logits(model, layers, projections, adapters, run)
    tensors = {k: v.contiguous() for k, v in inputs.items()}
    tensors.update(adapters)
    tensors["logits"] = logits.contiguous()
    tensors["logits_lora"] = logits_lora.contiguous()
    tensors["lora_scale"] = torch.tensor([ALPHA])
    save_file(tensors, f"{out}/reference.safetensors")
    change = (logits_lora - logits).abs().max().item()
    print(name, "logits", tuple(logits.shape), f"LoRA changes them by up to {change:.3g}")


def wavlm():
    model = WavLMForSequenceClassification.from_pretrained(
        f"{FIXTURES}/wavlm", num_labels=NUM_LABELS, classifier_proj_size=7
    )
    perturb_head(model, ["projector", "classifier"])
    ref = load_file(f"{FIXTURES}/wavlm/reference_masked.safetensors")
    inputs = {"input_values": ref["input_values"], "attention_mask": ref["attention_mask"]}
    layers = model.wavlm.encoder.layers
    projections = lambda l: [("query", l.attention.q_proj), ("value", l.attention.v_proj)]  # noqa: E731
    run = lambda m: m(**inputs).logits  # noqa: E731
    write("wavlm", model, layers, projections, inputs, run)


def beit():
    model = BeitForImageClassification.from_pretrained(f"{FIXTURES}/beit", num_labels=NUM_LABELS)
    perturb_head(model, ["classifier"])
    ref = load_file(f"{FIXTURES}/beit/reference.safetensors")
    inputs = {"pixel_values": ref["pixel_values"]}
    layers = model.beit.encoder.layer
    projections = lambda l: [  # noqa: E731
        ("query", l.attention.attention.query),
        ("value", l.attention.attention.value),
    ]
    run = lambda m: m(**inputs).logits  # noqa: E731
    write("beit", model, layers, projections, inputs, run)


def llama():
    # Padding id 0 (`<unk>`), as the fixture pads and the Rust tokenizer does; transformers takes
    # the position before the first pad id as each text's last token.
    model = LlamaForSequenceClassification.from_pretrained(
        f"{FIXTURES}/llama", num_labels=NUM_LABELS, pad_token_id=0
    )
    perturb_head(model, ["score"])
    ref = load_file(f"{FIXTURES}/llama/reference.safetensors")
    ids, mask, lengths = ref["input_ids"], ref["attention_mask"], ref["text_lengths"]
    for row, n in enumerate(lengths.tolist()):
        assert (ids[row, :n] != 0).all(), "a text contains the pad id"
    inputs = {"input_ids": ids, "attention_mask": mask}
    layers = model.model.layers
    projections = lambda l: [("query", l.self_attn.q_proj), ("value", l.self_attn.v_proj)]  # noqa: E731
    run = lambda m: m(**inputs).logits  # noqa: E731
    write("llama", model, layers, projections, dict(inputs, text_lengths=lengths), run)


if __name__ == "__main__":
    torch.manual_seed(0)
    wavlm()
    beit()
    llama()
