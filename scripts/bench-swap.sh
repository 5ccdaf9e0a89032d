#!/usr/bin/env bash
# What a model swap costs: with max_loaded_models = 1, the time of a short
# request to the loaded model (baseline) against one that must first evict
# it and load the other model just in time (the Q8_0 copy, 145 MB).
# Usage: scripts/bench-swap.sh [BIN] [MODEL] [MODEL_Q8] [ROUNDS]
set -euo pipefail
bin="${1:-target/release/ferrite}"
model="${2:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
q8="${3:-models/SmolLM2-135M-Instruct.Q8_0.gguf}"
rounds="${4:-5}"
port="${BENCH_PORT:-18125}"
dir=$(mktemp -d)
printf '[registry]\nscan = false\nmax_loaded_models = 1\n[[registry.models]]\nid = "q8"\npath = "%s"\n' \
  "$(realpath "$q8")" >"$dir/ferrite.toml"
"$bin" serve --model "$model" --port "$port" --no-cache --config "$dir/ferrite.toml" >"$dir/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
"$(dirname "$0")/wait-ready.sh" "$port" "$dir/log"

ask() { # model -> seconds for a 4-token answer
  curl -sf -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
    "http://127.0.0.1:$port/v1/chat/completions" \
    -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"temperature\":0}"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ask smollm2-135m-instruct >/dev/null
warm=(); swap=()
for _ in $(seq 1 "$rounds"); do
  ask smollm2-135m-instruct >/dev/null # the first after a reload warms it
  warm+=("$(ask smollm2-135m-instruct)")
  swap+=("$(ask q8)")             # evicts the Q4_1 model, loads Q8_0
  swap+=("$(ask smollm2-135m-instruct)") # and back
done
w=$(printf '%s\n' "${warm[@]}" | median)
s=$(printf '%s\n' "${swap[@]}" | median)
echo "requests to the loaded model:       median ${w}s over ${#warm[@]}"
echo "requests that swap models (JIT):    median ${s}s over ${#swap[@]}"
awk -v w="$w" -v s="$s" 'BEGIN {printf "a swap costs %.1fx a warm request (+%.2fs)\n", s / w, s - w}'
echo "unloads by LRU: $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^ferrite:model_unloads_total/ {n += $2} END {print n}')"
