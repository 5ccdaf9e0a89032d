#!/usr/bin/env python3
"""Writes a random-weight vision projector (`mmproj`) for a text GGUF, so
that image input can be tested end to end without a real vision model:
llama.cpp's LLaVA layout (a small CLIP ViT and the `mlp` projector) whose
output width is the text model's embedding width.

    make-mmproj.py TEXT.gguf OUT.gguf [--seed N] [--shape test|vit-b]

Its answers about images mean nothing, but they are deterministic, and
different pixels give different embeddings, which is what the tests need.
`test` (the default): a 2-layer, 64-wide encoder on 112x112 images in
14-pixel patches, 64 image tokens. `vit-b`: CLIP ViT-B/16's shape (12
layers, 768 wide, 224x224, 196 tokens), for benchmarks at a real cost."""
import argparse

import gguf
import numpy as np

# image side, patch side, width, heads, feed-forward width, blocks
SHAPES = {"test": (112, 14, 64, 4, 128, 2), "vit-b": (224, 16, 768, 12, 3072, 12)}


def text_width(path):
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    return int(r.fields[f"{arch}.embedding_length"].parts[-1][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", choices=SHAPES, default="test")
    args = ap.parse_args()
    IMAGE, PATCH, WIDTH, HEADS, FF, BLOCKS = SHAPES[args.shape]
    n_embd = text_width(args.text)
    rng = np.random.default_rng(args.seed)

    def rand(*shape, std=0.02, dtype=np.float16):
        return (rng.standard_normal(shape) * std).astype(dtype)

    w = gguf.GGUFWriter(args.out, "clip")
    w.add_string("general.name", "ferrite test projector (random weights)")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", IMAGE)
    w.add_uint32("clip.vision.patch_size", PATCH)
    w.add_uint32("clip.vision.embedding_length", WIDTH)
    w.add_uint32("clip.vision.feed_forward_length", FF)
    w.add_uint32("clip.vision.block_count", BLOCKS)
    w.add_uint32("clip.vision.projection_dim", n_embd)
    w.add_uint32("clip.vision.attention.head_count", HEADS)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    w.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])

    n_pos = (IMAGE // PATCH) ** 2 + 1  # patches plus the class embedding
    # numpy shapes are ggml's dimensions reversed: a linear layer is (out, in),
    # with weights of std 1/sqrt(in) so that activations keep their scale.
    w.add_tensor("v.patch_embd.weight", rand(WIDTH, 3, PATCH, PATCH, std=0.1))
    w.add_tensor("v.class_embd", rand(WIDTH, dtype=np.float32))
    w.add_tensor("v.position_embd.weight", rand(n_pos, WIDTH, dtype=np.float32))
    w.add_tensor("v.pre_ln.weight", np.ones(WIDTH, np.float32))
    w.add_tensor("v.pre_ln.bias", np.zeros(WIDTH, np.float32))
    for i in range(BLOCKS):
        p = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(f"{p}.{name}.weight", rand(WIDTH, WIDTH, std=WIDTH**-0.5))
            w.add_tensor(f"{p}.{name}.bias", np.zeros(WIDTH, np.float32))
        for ln in ("ln1", "ln2"):
            w.add_tensor(f"{p}.{ln}.weight", np.ones(WIDTH, np.float32))
            w.add_tensor(f"{p}.{ln}.bias", np.zeros(WIDTH, np.float32))
        w.add_tensor(f"{p}.ffn_up.weight", rand(FF, WIDTH, std=WIDTH**-0.5))
        w.add_tensor(f"{p}.ffn_up.bias", np.zeros(FF, np.float32))
        w.add_tensor(f"{p}.ffn_down.weight", rand(WIDTH, FF, std=FF**-0.5))
        w.add_tensor(f"{p}.ffn_down.bias", np.zeros(WIDTH, np.float32))
    # The projector: to about the scale of the text model's token embeddings.
    w.add_tensor("mm.0.weight", rand(n_embd, WIDTH, std=1.6 * WIDTH**-0.5))
    w.add_tensor("mm.0.bias", np.zeros(n_embd, np.float32))
    w.add_tensor("mm.2.weight", rand(n_embd, n_embd, std=0.05))
    w.add_tensor("mm.2.bias", np.zeros(n_embd, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
