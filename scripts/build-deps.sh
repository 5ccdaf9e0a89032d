#!/usr/bin/env bash
# What building ferrite needs beyond Rust: llama-cpp-sys-2 compiles its bundled
# llama.cpp with cmake and generates bindings with bindgen, which loads
# libclang. Installs Debian's `cmake` and `libclang-dev` when either is missing.
set -euo pipefail
have_libclang() {
  # grep reads all of it: with -q, ldconfig's SIGPIPE would fail the pipeline.
  [[ -n "${LIBCLANG_PATH:-}" ]] || ldconfig -p 2>/dev/null | grep 'libclang\(-[0-9.]*\)\?\.so' >/dev/null
}
if command -v cmake >/dev/null && have_libclang; then
  exit 0
fi
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo -n "$@"; fi; }
echo "installing cmake and libclang (Debian packages) for llama.cpp..." >&2
if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q cmake libclang-dev >&2; then
  echo "scripts/build-deps.sh: could not install cmake and libclang-dev; install them, or set LIBCLANG_PATH" >&2
  exit 1
fi
