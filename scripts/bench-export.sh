#!/usr/bin/env bash
# GET /v1/memory/export over SQLite stores of 10K and 1M stored exchanges
# (every one distinct), in one run: the time, rows a second, and how much the
# server's peak resident memory (VmHWM) grew during the export. Constant
# memory means the 1M export grows it about as little as the 10K one; with
# near-duplicate removal on, 8 bytes of hash per distinct exchange are kept.
# Usage: scripts/bench-export.sh BIN MODEL [ROWS...]
set -euo pipefail
bin="$1"
model="$2"
shift 2
rows=("${@:-10000 1000000}")
read -r -a rows <<<"${rows[*]}"
port="${BENCH_PORT:-18127}"
py="$(dirname "$0")/../.venv/bin/python"
[[ -x $py ]] || py=python3
log=/tmp/ferrite-bench-export.log
server=
trap '[[ -n $server ]] && kill $server 2>/dev/null || true' EXIT

start() {
  FERRITE_DATA_DIR="$1" FERRITE_MEMORY__ENABLED=true FERRITE_REGISTRY__SCAN=false \
    "$bin" serve --model "$model" --port "$port" >"$log" 2>&1 &
  server=$!
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$server/status"; }

for n in "${rows[@]}"; do
  for dedupe in false true; do
    dir=$(mktemp -d /tmp/ferrite-bench-export.XXXXXX)
    start "$dir"  # creates the schema
    stop
    "$py" - "$dir/memory.db" "$n" <<'PY'
import sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
now = int(time.time())
rows = ((f"Question {i}: what do you know about topic {i % 997} and item {i}?",
         f"Answer {i}: topic {i % 997} is well known; item {i} follows from it.", now)
        for i in range(n))
con.executemany("INSERT INTO memories (tenant, conversation, model, prompt, answer, "
                "prompt_tokens, completion_tokens, created_at) VALUES ('default', NULL, 'm', ?, ?, 20, 20, ?)", rows)
con.commit()
PY
    start "$dir"
    before=$(hwm)
    read -r secs bytes < <(curl -sf -o "$dir/out.jsonl" -w '%{time_total} %{size_download}\n' \
      "http://127.0.0.1:$port/v1/memory/export?dedupe=$dedupe")
    after=$(hwm)
    lines=$(wc -l <"$dir/out.jsonl")
    stop
    "$py" -c "import json,sys; n,d,s,b,l,h0,h1=sys.argv[1:]; print(json.dumps({'rows': int(n), 'dedupe': d == 'true', 'lines': int(l), 'seconds': round(float(s), 2), 'rows_per_s': round(int(n) / float(s)), 'mb': round(int(b) / 1e6, 1), 'peak_rss_growth_mb': round((int(h1) - int(h0)) / 1024, 1)}))" \
      "$n" "$dedupe" "$secs" "$bytes" "$lines" "$before" "$after"
    rm -rf "$dir"
  done
done
