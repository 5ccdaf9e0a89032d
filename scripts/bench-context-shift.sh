#!/usr/bin/env bash
# What an answer longer than the window costs: one 1,500-token answer to a
# 390-token prompt, generated in a 4,096-token context (it fits) and then in
# a 1,024-token one (`rolling_window`: it shifts three times, each shift
# re-reading the kept conversation), one after the other on one server
# (the request's `context_length` reloads the model). Prints JSON lines.
# Usage: scripts/bench-context-shift.sh BIN MODEL [TOKENS]
set -euo pipefail
bin="$1"
model="$2"
tokens="${3:-1500}"
port="${BENCH_PORT:-18128}"
py="$(dirname "$0")/../.venv/bin/python"
[[ -x $py ]] || py=python3
FERRITE_REGISTRY__SCAN=false FERRITE_CACHE__ENABLED=false \
  "$bin" serve --model "$model" --port "$port" >/tmp/ferrite-bench-shift.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
"$py" - "http://127.0.0.1:$port" "$tokens" <<'PY'
import json, sys, time
import httpx
url, tokens = sys.argv[1], int(sys.argv[2])
prompt = "Tell me a long story about a lighthouse keeper named Tom. " * 30
for context in (4096, 1024, 4096, 1024):
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "context_length": context, "context_overflow": "rolling_window",
            "temperature": 0.7, "seed": 3, "logit_bias": {"0": -100, "1": -100, "2": -100}}
    # Load at this context first, off the clock.
    httpx.post(f"{url}/v1/chat/completions", timeout=600,
               json={**body, "max_tokens": 1}).raise_for_status()
    started = time.perf_counter()
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    seconds = time.perf_counter() - started
    r.raise_for_status()
    out = r.json()
    done = out["usage"]["completion_tokens"]
    print(json.dumps({"context": context, "completion_tokens": done,
                      "shifts": (out.get("ferrite") or {}).get("context", {}).get("shifts", 0),
                      "seconds": round(seconds, 2), "tokens_per_s": round(done / seconds, 1)}))
PY
