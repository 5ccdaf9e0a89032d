#!/usr/bin/env python3
"""Rewrite a Llama-architecture GGUF as IBM Granite: same tensors, same answers.

Granite is Llama plus four scales; set to neutral values (embedding, residual
and logit scale 1, attention scale 1/sqrt(head_dim)) the model computes exactly
what the Llama file does. llama.cpp runs `granite`; mistral.rs's GGUF loader
does not, so the tests use this file for a model only llama.cpp can load.

  gguf-as-granite.py IN.gguf OUT.gguf
"""
import math
import sys

import gguf

from gguf_copy import copy


def main():
    src_path, out_path = sys.argv[1], sys.argv[2]
    src = gguf.GGUFReader(src_path)
    arch = bytes(src.fields["general.architecture"].parts[-1]).decode()
    assert arch == "llama", f"expected a llama GGUF, got {arch}"
    heads = src.fields["llama.attention.head_count"].contents()
    hidden = src.fields["llama.embedding_length"].contents()
    f32 = gguf.GGUFValueType.FLOAT32
    copy(
        src_path,
        out_path,
        arch="granite",
        rename=lambda key: "granite." + key[len("llama."):] if key.startswith("llama.") else key,
        extra=[
            ("granite.embedding_scale", 1.0, f32),
            ("granite.residual_scale", 1.0, f32),
            ("granite.logit_scale", 1.0, f32),
            ("granite.attention.scale", 1.0 / math.sqrt(hidden // heads), f32),
        ],
    )


if __name__ == "__main__":
    main()
