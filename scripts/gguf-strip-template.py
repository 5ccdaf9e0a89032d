#!/usr/bin/env python3
"""Copy a GGUF without its chat template (`tokenizer.chat_template`), as
some GGUFs are published: same tensors, same vocabulary.

  gguf-strip-template.py IN.gguf OUT.gguf
"""
import sys

from gguf_copy import copy

if __name__ == "__main__":
    copy(sys.argv[1], sys.argv[2], drop=("tokenizer.chat_template",))
