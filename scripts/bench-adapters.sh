#!/usr/bin/env bash
# What LoRA adapters cost on llama.cpp: 8 concurrent streams of TOKENS
# tokens each, all on the base model (the baseline), all on one adapter,
# half base and half adapter (two groups taking turns at the step loop),
# and four groups of two (base, a, b, a+b). Rank-8 adapters on q, v and
# ffn_down are made for MODEL by scripts/make-lora.py. Two rounds; prints
# JSON lines with aggregate tokens/s and the ratio to the baseline's.
# Usage: scripts/bench-adapters.sh BIN MODEL [TOKENS]
set -euo pipefail
bin="$1"
model="$(realpath "$2")"
tokens="${3:-128}"
port="${BENCH_PORT:-18129}"
root="$(dirname "$0")/.."
py="$root/.venv/bin/python"
dir="$(mktemp -d)"
"$py" "$root/scripts/make-lora.py" "$model" "$dir/a.gguf" --seed 1 --std 0.3 >/dev/null
"$py" "$root/scripts/make-lora.py" "$model" "$dir/b.gguf" --seed 2 --std 0.3 >/dev/null
cat >"$dir/ferrite.toml" <<EOF
[registry]
scan = false
[[registry.models]]
id = "m"
path = "$model"
adapters = [{ id = "a", path = "$dir/a.gguf" }, { id = "b", path = "$dir/b.gguf" }]
EOF
FERRITE_CACHE__ENABLED=false FERRITE_DATA_DIR="$dir" \
  "$bin" serve --config "$dir/ferrite.toml" --model "$model" --port "$port" >"$dir/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
"$py" - "http://127.0.0.1:$port" "$tokens" <<'PY'
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx
url, tokens = sys.argv[1], int(sys.argv[2])
mixes = {
    "base x8": ["m"] * 8,
    "one adapter x8": ["m@a"] * 8,
    "base x4 + adapter x4": ["m"] * 4 + ["m@a"] * 4,
    "4 sets x2": ["m", "m@a", "m@b", "m@a,b"] * 2,
}
def one(model, i):
    body = {"model": model, "max_tokens": tokens, "temperature": 0.7, "seed": i,
            "messages": [{"role": "user", "content": f"Tell me story number {i} about a lighthouse."}],
            # No end-of-text tokens: every stream runs to `tokens`.
            "logit_bias": {"0": -100, "1": -100, "2": -100}}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=900)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]
def run(models):
    started = time.perf_counter()
    with ThreadPoolExecutor(len(models)) as pool:
        done = sum(pool.map(one, models, range(len(models))))
    return done / (time.perf_counter() - started)
run(["m", "m@a"])  # load and warm up, off the clock
best = {}
for _ in range(2):
    for name, models in mixes.items():
        best[name] = max(best.get(name, 0), run(models))
base = best["base x8"]
for name, rate in best.items():
    print(json.dumps({"mix": name, "tokens_per_s": round(rate, 1), "vs_base": round(rate / base, 2)}))
PY
