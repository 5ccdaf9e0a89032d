#!/usr/bin/env bash
# Builds llama.cpp's own llama-server, the reference ferrite's llama.cpp
# runtime is benchmarked against, and prints its path. llama-cpp-sys-2's
# bundled llama.cpp leaves the server's sources out, so they come from the
# sdist of the PyPI package llama-cpp-python, which vendors all of llama.cpp.
# Same CPU flags as ferrite's build (.cargo/config.toml: x86-64-v3).
# Needs cmake and a C++ compiler (Debian: cmake, g++). Usage: scripts/build-llama-server.sh
set -euo pipefail
version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
out="${FERRITE_CACHE:-$HOME/.cache/ferrite}/llama-server-$version"
bin="$out/build/bin/llama-server"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out"
index=https://pypi.org/pypi/llama-cpp-python/json
url=$(curl -fsSL "$index" | python3 -c '
import json, sys, urllib.parse
release = json.load(sys.stdin)["releases"][sys.argv[2]]
sdist = next(u for u in release if u["packagetype"] == "sdist")
print(urllib.parse.urljoin(sys.argv[1], sdist["url"]))' "$index" "$version")
curl -fsSL -o "$out/sdist.tar.gz" "$url"
echo "$sha256  $out/sdist.tar.gz" | sha256sum -c --quiet
tar xzf "$out/sdist.tar.gz" -C "$out" --strip-components=3 "llama_cpp_python-$version/vendor/llama.cpp"
cmake -S "$out" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_OPENMP=ON >"$out/cmake.log"
cmake --build "$out/build" --target llama-server -j "$(nproc)" >"$out/build.log"
echo "$bin"
