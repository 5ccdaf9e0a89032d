#!/usr/bin/env python3
"""Write a GGUF as a split model, as large models are published:
`PREFIX-00001-of-0000N.gguf`... (llama.cpp loads it from the first part).

  gguf-split.py IN.gguf OUT_PREFIX PARTS
"""
import sys

import gguf

from gguf_copy import copy


def main():
    src_path, prefix, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tensors = len(gguf.GGUFReader(src_path).tensors)
    copy(src_path, f"{prefix}.gguf", split_max_tensors=-(-tensors // parts))


if __name__ == "__main__":
    main()
