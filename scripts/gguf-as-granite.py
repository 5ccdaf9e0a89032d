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


def main():
    src_path, out_path = sys.argv[1], sys.argv[2]
    src = gguf.GGUFReader(src_path)
    arch = bytes(src.fields["general.architecture"].parts[-1]).decode()
    assert arch == "llama", f"expected a llama GGUF, got {arch}"
    w = gguf.GGUFWriter(out_path, "granite")
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        name = "granite." + key[len("llama."):] if key.startswith("llama.") else key
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), vtype)
    heads = src.fields["llama.attention.head_count"].contents()
    hidden = src.fields["llama.embedding_length"].contents()
    w.add_float32("granite.embedding_scale", 1.0)
    w.add_float32("granite.residual_scale", 1.0)
    w.add_float32("granite.logit_scale", 1.0)
    w.add_float32("granite.attention.scale", 1.0 / math.sqrt(hidden // heads))
    for t in src.tensors:
        w.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
