#!/usr/bin/env bash
# ferrite's features on the default model (on its default runtime, llama.cpp):
# benchmarks the default model at concurrency 1 and 8 on a fresh server, and
# the same with continuous batching off (--max-seqs 1) as the baseline, and
# with the weights dequantized to f32 at load (CANDLE_DEQUANTIZE_ALL=1);
# and what a response-cache hit costs.
# Usage: scripts/bench.sh [BIN] [MODEL]
set -euo pipefail
bin="${1:-target/release/ferrite}"
model="${2:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
port="${BENCH_PORT:-18123}"
max_tokens="${BENCH_MAX_TOKENS:-128}"

run_server() {
  "$bin" serve --model "$model" --port "$port" "$@" >/tmp/ferrite-bench.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  "$(dirname "$0")/wait-ready.sh" "$port" /tmp/ferrite-bench.log
}

bench() {
  # One warm-up request, then the measured run.
  "$bin" bench --base-url "http://127.0.0.1:$port/v1" --concurrency 1 --requests 1 --max-tokens 8 >/dev/null
  # SmolLM2's end-of-text ids are banned so every request makes max_tokens.
  "$bin" bench --base-url "http://127.0.0.1:$port/v1" --max-tokens "$max_tokens" \
    --logit-bias 0=-100 --logit-bias 2=-100 "$@"
}

echo "## continuous batching on (default --max-seqs 16)"
run_server
bench --concurrency 1 --requests 4
bench --concurrency 8 --requests 16
echo
echo "## thinking budget: half the tokens in a forced thinking block (ferrite's sampler steers)"
bench --concurrency 1 --requests 4 --thinking-max $((max_tokens / 2))
bench --concurrency 8 --requests 16 --thinking-max $((max_tokens / 2))
echo
echo "## response cache: hits of one deterministic request"
"$bin" bench-cache --base-url "http://127.0.0.1:$port" --requests 2000
kill $server; wait $server 2>/dev/null || true

echo
echo "## baseline: batching off (--max-seqs 1)"
run_server --max-seqs 1
bench --concurrency 8 --requests 16
kill $server; wait $server 2>/dev/null || true

echo
echo "## mistral.rs with weights dequantized to f32 at load (CANDLE_DEQUANTIZE_ALL=1)"
CANDLE_DEQUANTIZE_ALL=1 run_server --runtime mistral.rs
bench --concurrency 1 --requests 4
bench --concurrency 8 --requests 16
