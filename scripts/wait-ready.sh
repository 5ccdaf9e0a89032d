#!/usr/bin/env bash
# Waits up to two minutes for a server on 127.0.0.1:PORT to answer PATH
# (default /ready: ferrite; llama-server says /health).
# Usage: scripts/wait-ready.sh PORT [LOG] [PATH]   (LOG is named if it never does)
for _ in $(seq 1 1200); do
  curl -sf "http://127.0.0.1:$1${3:-/ready}" >/dev/null && exit 0
  sleep 0.1
done
echo "server on port $1 did not become ready${2:+; see $2}" >&2
exit 1
