#!/usr/bin/env python3
"""Turn a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors,
as PEFT and TRL save one) for a llama-architecture model into a GGUF LoRA
adapter that ferrite's llama.cpp runtime serves (F16 tensors).

mistral.rs 0.8.1 merges adapters into the weights when loading and cannot
switch them per request, so ferrite serves PEFT adapters this way, on the
GGUF of the same base model. The layout is llama.cpp's
convert_lora_to_gguf.py's: `blk.N.attn_q.weight.lora_a` is PEFT's lora_A
(rank x inputs), `.lora_b` its lora_B (outputs x rank), with the rows of Q
and K's lora_B permuted as llama.cpp permutes those weights, and PEFT's
`lora_alpha` as `adapter.lora.alpha` (llama.cpp scales by alpha / rank, as
PEFT does). Needs numpy, safetensors and gguf (all in tests/python's
requirements).

  peft-to-gguf-lora.py BASE.gguf PEFT_DIR OUT.gguf
"""
import json
import re
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
PEFT_NAME = re.compile(r"(?:.*\.)?layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.default)?\.weight$")


def permute(w, n_head):
    """HF's rotary row layout to GGML's, as llama.cpp converts Q and K."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(reader, name, default=None):
    f = reader.fields.get(name)
    return default if f is None else f.contents()


def convert(base_path, peft_dir, out_path):
    base = gguf.GGUFReader(base_path)
    arch = field(base, "general.architecture")
    if arch != "llama":
        sys.exit(f"only llama models are supported, not {arch}")
    n_head = field(base, "llama.attention.head_count")
    n_kv = field(base, "llama.attention.head_count_kv", n_head)
    shapes = {t.name: (int(t.shape[0]), int(t.shape[1])) for t in base.tensors if len(t.shape) == 2}
    config = json.loads((Path(peft_dir) / "adapter_config.json").read_text())
    if config.get("use_dora") or config.get("use_rslora"):
        sys.exit("DoRA and rsLoRA adapters are not supported")
    tensors = load_file(str(Path(peft_dir) / "adapter_model.safetensors"))
    pairs = {}
    for name, w in tensors.items():
        m = PEFT_NAME.match(name)
        if not m or m.group(2) not in GGUF_NAMES:
            sys.exit(f"unexpected tensor {name} (only LoRA on attention and MLP projections)")
        layer, module, ab = m.groups()
        target = f"blk.{layer}.{GGUF_NAMES[module]}.weight"
        pairs.setdefault(target, {})[ab] = w.astype(np.float32)
    w = gguf.GGUFWriter(out_path, arch)
    w.add_string("general.type", "adapter")
    w.add_string("general.name", Path(peft_dir).name)
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for target, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"} or target not in shapes:
            sys.exit(f"{target}: missing lora_A/lora_B, or not in {base_path}")
        a, b = ab["A"], ab["B"]
        if (a.shape[1], b.shape[0]) != shapes[target] or a.shape[0] != b.shape[1]:
            sys.exit(f"{target}: adapter shapes {a.shape}, {b.shape} do not fit the model")
        if ".attn_q." in target:
            b = permute(b, n_head)
        elif ".attn_k." in target:
            b = permute(b, n_kv)
        w.add_tensor(target + ".lora_a", a.astype(np.float16))
        w.add_tensor(target + ".lora_b", np.ascontiguousarray(b).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out_path}: {len(pairs)} LoRA pairs, rank {config.get('r')}, alpha {config['lora_alpha']}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    convert(*sys.argv[1:])
