#!/usr/bin/env bash
# The latency a request pays for its budget check: in this process against
# shared through PostgreSQL (`budgets.url`), one after the other in one run.
# The response cache is on and every request repeats one prompt, so after
# the first the answer is a cache hit and the budget check is most of the
# request's time. Prints JSON lines (p50/p99 per backend) and the added ms.
# Usage: scripts/bench-budgets.sh BIN MODEL POSTGRES_URL [REQUESTS]
set -euo pipefail
bin="$1"
model="$2"
pg="$3"
n="${4:-500}"
port="${BENCH_PORT:-18126}"
py="$(dirname "$0")/../.venv/bin/python"
[[ -x $py ]] || py=python3
out=/tmp/ferrite-bench-budgets.jsonl
log=/tmp/ferrite-bench-budgets.log
: >"$out"
trap 'kill $server 2>/dev/null || true' EXIT

run() { # name, then env assignments
  local name="$1"; shift
  env FERRITE_CACHE__ENABLED=true FERRITE_REGISTRY__SCAN=false \
    FERRITE_BUDGETS__REQUESTS_PER_MINUTE=1000000 FERRITE_BUDGETS__TOKENS_PER_MINUTE=1000000000 \
    "$@" "$bin" serve --model "$model" --port "$port" >"$log" 2>&1 &
  server=$!
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
  "$py" - "$name" "http://127.0.0.1:$port" "$n" >>"$out" <<'PY'
import json, statistics, sys, time
import httpx
name, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = httpx.Client(timeout=60)
body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0}
for _ in range(20):  # warm: the cache entry, the pool's connections
    client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
times = []
for _ in range(n):
    t = time.perf_counter()
    r = client.post(f"{url}/v1/chat/completions", json=body)
    times.append((time.perf_counter() - t) * 1000)
    r.raise_for_status()
    assert r.headers.get("x-ferrite-cache") == "hit", r.headers
times.sort()
print(json.dumps({"backend": name, "requests": n,
                  "p50_ms": round(statistics.median(times), 3),
                  "p99_ms": round(times[int(0.99 * (n - 1))], 3)}))
PY
  kill "$server"; wait "$server" 2>/dev/null || true
}

run in-process
db="ferrite_bench_budgets_$$"
psql "$pg" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
run postgres FERRITE_BUDGETS__URL="${pg%/*}/$db"
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
cat "$out"
"$py" - "$out" <<'PY'
import json, sys
rows = {r["backend"]: r for r in map(json.loads, open(sys.argv[1]))}
local, shared = rows["in-process"], rows["postgres"]
for q in ("p50_ms", "p99_ms"):
    print(f"{q[:3]}: in-process {local[q]} ms, postgres {shared[q]} ms: "
          f"+{shared[q] - local[q]:.3f} ms ({shared[q] / local[q]:.2f}x)")
PY
