#!/usr/bin/env bash
# Embeddings per second on one GGUF embedding model: ferrite against llama.cpp's
# own llama-server (`--embeddings`, as LM Studio runs embedding models), one
# after the other in one run. Three loads: 1 input per request one at a time,
# 64 inputs in one request, and 8 clients sending 1 input each at once (what
# ferrite batches across requests). Prints JSON lines and the ratios.
# Usage: scripts/bench-embeddings.sh BIN EMBED_MODEL CHAT_MODEL [LLAMA_SERVER]
set -euo pipefail
bin="$1"
embed="$2"
chat="$3"
llama_server="${4:-}"
port="${BENCH_PORT:-18125}"
threads=$(lscpu -p=core,socket | grep -v '^#' | sort -u | wc -l)
log=/tmp/ferrite-bench-embeddings.log
py="$(dirname "$0")/../.venv/bin/python"
[[ -x $py ]] || py=python3
out=/tmp/ferrite-bench-embeddings.jsonl
: >"$out"
trap 'kill $server 2>/dev/null || true' EXIT

measure() {
  "$py" - "$1" "http://127.0.0.1:$port" "$2" >>"$out" <<'PY'
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx
name, url, model = sys.argv[1:]
texts = [f"Sentence number {i}: the harbour is quiet at dawn and boats rock on their moorings." for i in range(512)]
client = httpx.Client(timeout=300)
def post(inputs):
    r = client.post(f"{url}/v1/embeddings", json={"model": model, "input": inputs})
    r.raise_for_status()
    assert len(r.json()["data"]) == len(inputs)
post(texts[:4])  # warm-up
def rate(fn, n):
    best = 0.0
    for _ in range(2):  # the better of two: this machine's noise is ±10%
        t = time.perf_counter(); fn(); best = max(best, n / (time.perf_counter() - t))
    return round(best, 1)
one = rate(lambda: [post([t]) for t in texts[:64]], 64)
batch = rate(lambda: [post(texts[i:i + 64]) for i in range(0, 256, 64)], 256)
with ThreadPoolExecutor(8) as pool:
    eight = rate(lambda: list(pool.map(lambda t: post([t]), texts[:128])), 128)
print(json.dumps({"server": name, "one_input": one, "batch_64": batch, "clients_8": eight}))
PY
}

"$bin" serve --model "$chat" --embedding-model "$embed" --port "$port" --no-cache >"$log" 2>&1 &
server=$!
"$(dirname "$0")/wait-ready.sh" "$port" "$log" /ready
measure ferrite all-minilm-l6-v2
kill $server; wait $server 2>/dev/null || true

if [[ -n $llama_server ]]; then
  # Pooling and batch as ferrite sets them; 8 slots for the 8 clients.
  "$llama_server" -m "$embed" --embeddings --port "$port" -t "$threads" -np 8 -c 4096 \
    -b 4096 -ub 4096 >"$log" 2>&1 &
  server=$!
  "$(dirname "$0")/wait-ready.sh" "$port" "$log" /health
  measure llama-server all-minilm-l6-v2
  kill $server; wait $server 2>/dev/null || true
fi

cat "$out"
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]
print(f"ferrite: 64 inputs per request embed {base['batch_64'] / base['one_input']:.1f}x as many per second as 1 per request")
for r in rows[1:]:
    print(f"ferrite / {r['server']}: " + ", ".join(f"{k} {base[k] / r[k]:.2f}x" for k in ("one_input", "batch_64", "clients_8")))
PY
