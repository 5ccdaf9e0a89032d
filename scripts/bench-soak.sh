#!/usr/bin/env bash
# Memory over a long run: 1,000 short streamed chats (8 at a time, every fifth
# abandoned mid-stream, each prompt new) against a fresh server with the
# default prefix cache, then the same with the prefix cache off as the
# baseline. Prints the server's RSS every 100 requests.
# Usage: scripts/bench-soak.sh [BIN] [MODEL] [REQUESTS]
# SOAK_SERVER_BIN=other/ferrite measures another build (e.g. an older commit)
# with this build's client.
set -euo pipefail
bin="${1:-target/release/ferrite}"
model="${2:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
requests="${3:-1000}"
server_bin="${SOAK_SERVER_BIN:-$bin}"
port="${BENCH_PORT:-18124}"

soak() {
  FERRITE_REGISTRY__SCAN=false "$server_bin" serve --model "$model" --port "$port" "$@" \
    >/tmp/ferrite-soak.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  "$(dirname "$0")/wait-ready.sh" "$port" /tmp/ferrite-soak.log
  "$bin" bench-soak --base-url "http://127.0.0.1:$port" --requests "$requests" --pid "$server"
  kill $server; wait $server 2>/dev/null || true
}

echo "## default prefix cache (16 entries, 1024 MiB)"
soak
echo
echo "## baseline: prefix cache off (--prefix-cache 0)"
soak --prefix-cache 0
