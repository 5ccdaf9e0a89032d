#!/usr/bin/env bash
# MemAgent's cost on the default model: one request whose conversation is
# far longer than the context (`context_overflow: "memagent"`), at each input
# size given, in one run; prints JSON lines (seconds, chunks, tokens read) and
# seconds per 100K input tokens. Linear cost shows as equal rates.
# Usage: scripts/bench-long-context.sh BIN MODEL [TOKENS...]  (default 25000)
set -euo pipefail
bin="$1"
model="$2"
shift 2
sizes=("${@:-25000}")
port="${BENCH_PORT:-18127}"
py="$(dirname "$0")/../.venv/bin/python"
[[ -x $py ]] || py=python3
log=/tmp/ferrite-bench-long-context.log
FERRITE_CACHE__ENABLED=false FERRITE_REGISTRY__SCAN=false \
  "$bin" serve --model "$model" --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
for tokens in ${sizes[@]}; do
  "$py" - "http://127.0.0.1:$port" "$tokens" <<'PY'
import json, sys, time
import httpx
url, target = sys.argv[1], int(sys.argv[2])
client = httpx.Client(timeout=3600)
messages, i = [{"role": "system", "content": "You answer briefly."}], 0
text = lambda i: "".join(f"Ship {i*5+k} sailed from port {i%7} carrying {(i*13+k)%90} crates of tea. " for k in range(5))
count = lambda ms: len(client.post(f"{url}/tokenize", json={"content": "".join(m["content"] for m in ms)}).json()["tokens"])
while True:
    messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text(i)})
    i += 1
    if i % 100 == 0 and count(messages) >= target:
        break
messages += [{"role": "assistant", "content": "Noted."}] * (messages[-1]["role"] == "user")
messages.append({"role": "user", "content": "Which port did ship 42 sail from?"})
read = count(messages)
t = time.perf_counter()
r = client.post(f"{url}/v1/chat/completions", json={
    "messages": messages, "max_tokens": 32, "temperature": 0, "context_overflow": "memagent"})
secs = time.perf_counter() - t
r.raise_for_status()
body = r.json()
print(json.dumps({"input_tokens": read, "seconds": round(secs, 1),
                  "chunks": body["ferrite"]["memagent"]["chunks"],
                  "tokens_processed": body["usage"]["total_tokens"],
                  "seconds_per_100k_input": round(secs * 100000 / read, 1)}))
PY
done
