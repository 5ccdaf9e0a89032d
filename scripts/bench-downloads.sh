#!/usr/bin/env bash
# Download throughput: ferrite fetching a file from a local server that
# speaks the Hugging Face Hub's API (tests/python/hub_server.py: a redirect
# to a second host, then the body), against curl fetching the same body from
# the same server, in the same run. Both write to the same disk; ferrite
# also hashes (sha256) and verifies what it writes, and syncs it to the disk
# before renaming it into place, so curl is also timed with an fsync after.
# Usage: scripts/bench-downloads.sh [BIN] [MIB] [ROUNDS]
set -euo pipefail
bin="${1:-target/release/ferrite}"
mib="${2:-512}"
rounds="${3:-3}"
port="${BENCH_PORT:-18126}"
py="${PYTHON:-.venv/bin/python}"
dir=$(mktemp -d)
trap 'kill ${hub:-} ${server:-} 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c $((mib << 20)) /dev/urandom >"$dir/blob-Q4_0.gguf"
printf '{"bench/blob-GGUF": {"files": {"blob-Q4_0.gguf": "%s"}}}' "$dir/blob-Q4_0.gguf" >"$dir/repos.json"
"$py" tests/python/hub_server.py "$dir/repos.json" >"$dir/ports" &
hub=$!
for _ in $(seq 1 600); do [[ -s $dir/ports ]] && break; sleep 0.1; done
read -r hub_port cdn_port <"$dir/ports"
sha=$(sha256sum "$dir/blob-Q4_0.gguf" | cut -d' ' -f1)
mkdir -p "$dir/models"
FERRITE_DOWNLOADS__ENDPOINT="http://127.0.0.1:$hub_port" FERRITE_REGISTRY__DIR="$dir/models" \
  FERRITE_DOWNLOADS__HF_CACHE="$dir/none" \
  "$bin" serve --model models/SmolLM2-135M-Instruct.Q4_1.gguf --port "$port" >"$dir/log" 2>&1 &
server=$!
"$(dirname "$0")/wait-ready.sh" "$port" "$dir/log"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
curl_s=(); synced_s=(); ferrite_s=()
for _ in $(seq 1 "$rounds"); do
  rm -f "$dir/curl.out"
  t0=$(now)
  curl -sf -L -o "$dir/curl.out" "http://127.0.0.1:$hub_port/bench/blob-GGUF/resolve/main/blob-Q4_0.gguf"
  curl_s+=("$(echo "$(now) - $t0" | bc)")
  sync "$dir/curl.out"
  synced_s+=("$(echo "$(now) - $t0" | bc)")
  rm -rf "$dir/models/bench"
  t0=$(now)
  FERRITE_URL="http://127.0.0.1:$port" "$bin" get -y bench/blob-GGUF:Q4_0 >/dev/null
  ferrite_s+=("$(echo "$(now) - $t0" | bc)")
  [[ $(sha256sum "$dir/models/bench/blob-GGUF/blob-Q4_0.gguf" | cut -d' ' -f1) == "$sha" ]]
done
c=$(printf '%s\n' "${curl_s[@]}" | median)
s=$(printf '%s\n' "${synced_s[@]}" | median)
f=$(printf '%s\n' "${ferrite_s[@]}" | median)
awk -v c="$c" -v s="$s" -v f="$f" -v m="$mib" 'BEGIN {
  printf "curl:           %d MiB in %.2fs = %.0f MiB/s (median of runs)\n", m, c, m / c
  printf "curl + fsync:   %d MiB in %.2fs = %.0f MiB/s\n", m, s, m / s
  printf "ferrite get:    %d MiB in %.2fs = %.0f MiB/s (verified, synced, installed)\n", m, f, m / f
  printf "ferrite / curl: %.2fx; ferrite / (curl + fsync): %.2fx\n", c / f, s / f }'
