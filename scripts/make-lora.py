#!/usr/bin/env python3
"""Write a GGUF LoRA adapter for a GGUF model, as llama.cpp's
convert_lora_to_gguf.py lays one out, with fixed pseudo-random weights.

No adapter can be downloaded here, so the tests make their own: a rank-R
adapter on the chosen projections of every layer, its weights drawn from a
seeded generator (the same file for the same arguments), large enough to
change what the model says. Tensors are F16 unless `--type f32`: llama.cpp's
CPU build here crashes on F32 LoRA tensors, so ferrite refuses those.

  make-lora.py BASE.gguf OUT.gguf [--seed N] [--rank 8] [--alpha 16]
               [--targets attn_q,attn_v,ffn_down] [--std 1.0] [--type f16]
"""
import argparse

import gguf
import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default="attn_q,attn_v,ffn_down")
    p.add_argument("--std", type=float, default=1.0, help="scale of B's weights")
    p.add_argument("--type", choices=["f16", "f32"], default="f16", help="tensor type")
    args = p.parse_args()

    base = gguf.GGUFReader(args.base)
    arch = bytes(base.fields["general.architecture"].parts[-1]).decode()
    targets = set(args.targets.split(","))
    rng = np.random.default_rng(args.seed)
    w = gguf.GGUFWriter(args.out, arch)
    w.add_string("general.type", "adapter")
    w.add_string("general.name", f"ferrite test adapter {args.seed}")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", args.alpha)
    written = 0
    for t in base.tensors:
        # blk.N.<target>.weight; ggml's shape is (inputs, outputs).
        parts = t.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in targets:
            continue
        n_in, n_out = int(t.shape[0]), int(t.shape[1])
        # A maps the input to R values of about unit size; B spreads them
        # over the outputs.
        a = rng.standard_normal((args.rank, n_in)) / np.sqrt(n_in)
        b = rng.standard_normal((n_out, args.rank)) * args.std / np.sqrt(args.rank)
        dtype = np.float16 if args.type == "f16" else np.float32
        w.add_tensor(t.name + ".lora_a", a.astype(dtype))
        w.add_tensor(t.name + ".lora_b", b.astype(dtype))
        written += 1
    if not written:
        raise SystemExit(f"no tensor of {args.base} matches --targets {args.targets}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{args.out}: rank {args.rank} on {written} tensors of {arch}")


if __name__ == "__main__":
    main()
