#!/usr/bin/env python3
"""Writes a random-weight Hugging Face LlamaForCausalLM folder of a real model's geometry, streaming.

For measuring the node on real-sized models without downloading one (the machine has no model hub): the files
are what transformers writes (config.json, generation_config.json, BF16 safetensors shards with an index,
tokenizer.json, tokenizer_config.json with a chat template), the values meaningless. Each tensor is generated,
rounded to bfloat16 and written before the next, so memory stays at one tensor whatever the model's size.

    python3 tools/random_llama/make_random_llama.py --geometry tinyllama-1.1b \
        --tokenizer .bench/bundles/bench/tokenizer.json --out /tmp/tinyllama-random

Needs numpy only. The tokenizer must have the geometry's vocabulary size or fewer tokens (the bench bundle's
tokenizer.json has 32,000, TinyLlama's vocabulary size).
"""
import argparse
import json
import os
import shutil

import numpy as np

GEOMETRIES = {
    # name: hidden, intermediate, layers, heads, kv heads, vocab, max positions, rope theta, rms eps, tied
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000, 2048, 10000.0, 1e-5, False),
    "llama-3.2-1b": (2048, 8192, 16, 32, 8, 128256, 131072, 500000.0, 1e-5, True),
    "small": (256, 688, 4, 8, 2, 32000, 2048, 10000.0, 1e-5, False),
}

# TinyLlama-1.1B-Chat-v1.0's template (zephyr style): its markers are plain text, so any tokenizer serves it.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def tensors(hidden, inter, layers, heads, kv, vocab, tied):
    head_dim = hidden // heads
    out = [("model.embed_tokens.weight", (vocab, hidden), 1.0)]
    for l in range(layers):
        p = f"model.layers.{l}."
        out += [
            (p + "input_layernorm.weight", (hidden,), None),
            (p + "self_attn.q_proj.weight", (heads * head_dim, hidden), hidden ** -0.5),
            (p + "self_attn.k_proj.weight", (kv * head_dim, hidden), hidden ** -0.5),
            (p + "self_attn.v_proj.weight", (kv * head_dim, hidden), hidden ** -0.5),
            (p + "self_attn.o_proj.weight", (hidden, heads * head_dim), (heads * head_dim) ** -0.5),
            (p + "post_attention_layernorm.weight", (hidden,), None),
            (p + "mlp.gate_proj.weight", (inter, hidden), hidden ** -0.5),
            (p + "mlp.up_proj.weight", (inter, hidden), hidden ** -0.5),
            (p + "mlp.down_proj.weight", (hidden, inter), inter ** -0.5),
        ]
    out.append(("model.norm.weight", (hidden,), None))
    if not tied:
        out.append(("lm_head.weight", (vocab, hidden), 4 * hidden ** -0.5))
    return out


def bf16(values):
    """float32 → bfloat16 bits, round to nearest even."""
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--geometry", choices=sorted(GEOMETRIES), required=True)
    ap.add_argument("--tokenizer", required=True, help="a tokenizer.json to ship with the model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    hidden, inter, layers, heads, kv, vocab, max_pos, theta, eps, tied = GEOMETRIES[a.geometry]
    os.makedirs(a.out, exist_ok=True)
    specs = tensors(hidden, inter, layers, heads, kv, vocab, tied)
    total = sum(2 * int(np.prod(shape)) for _, shape, _ in specs)
    # Contiguous runs of about equal bytes per shard.
    shards, current, size = [], [], 0
    for spec in specs:
        current.append(spec)
        size += 2 * int(np.prod(spec[1]))
        if size >= total / a.shards and len(shards) < a.shards - 1:
            shards.append(current)
            current, size = [], 0
    shards.append(current)
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    rng = np.random.default_rng(a.seed)
    weight_map = {}
    for name, part in zip(names, shards):
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for tensor, shape, _ in part:
            n = 2 * int(np.prod(shape))
            header[tensor] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
            weight_map[tensor] = name
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            for tensor, shape, std in part:
                count = int(np.prod(shape))
                if std is None:  # a norm's gain, near 1
                    values = (0.9 + 0.2 * rng.random(count, dtype=np.float32)).astype(np.float32)
                else:
                    values = (rng.standard_normal(count, dtype=np.float32) * np.float32(std)).astype(np.float32)
                f.write(bf16(values).tobytes())
        print(f"wrote {name}", flush=True)
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
        "max_position_embeddings": max_pos, "rope_theta": theta, "rms_norm_eps": eps,
        "rope_scaling": ({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192} if a.geometry == "llama-3.2-1b" else None),
        "tie_word_embeddings": tied, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
    shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                   "chat_template": ZEPHYR_TEMPLATE, "model_max_length": max_pos}, f, indent=2)
    print(f"wrote {a.out}: {a.geometry}, {total / 2 / 1e9:.2f} B parameters, {total / 1e9:.2f} GB BF16", flush=True)


if __name__ == "__main__":
    main()
