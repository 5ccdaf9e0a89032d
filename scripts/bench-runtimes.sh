#!/usr/bin/env bash
# ferrite on llama.cpp, ferrite on mistral.rs and llama.cpp's own llama-server,
# one after the other on the same GGUF in one run: decode at 1 stream,
# aggregate and time to first token at 8 streams, and prompt processing of a
# ~350-token prompt. Prints the figures and the ratios BENCHMARKS.md records.
# ferrite on llama.cpp and llama-server run twice, alternately, and each
# figure is the better of the two: this 2-core machine's noise is ±10%.
# Usage: scripts/bench-runtimes.sh BIN MODEL [LLAMA_SERVER]
#   BENCH_MAX_TOKENS (128), BENCH_REQUESTS_1 (4), BENCH_REQUESTS_8 (16)
set -euo pipefail
bin="$1"
model="$2"
llama_server="${3:-}"
port="${BENCH_PORT:-18124}"
max_tokens="${BENCH_MAX_TOKENS:-128}"
requests_1="${BENCH_REQUESTS_1:-4}"
requests_8="${BENCH_REQUESTS_8:-16}"
threads=$(lscpu -p=core,socket | grep -v '^#' | sort -u | wc -l)
log=/tmp/ferrite-bench-runtimes.log
# About 350 tokens with the chat template.
long_prompt="$(printf 'The harbour at dawn is quiet: fishing boats rock on their moorings, gulls circle the masts, and the smell of salt and diesel hangs over the water. %.0s' $(seq 1 11))Summarise the scene."

wait_ready() { "$(dirname "$0")/wait-ready.sh" "$port" "$log" "/$1"; }

# Prints one JSON line per measure for the server now on $port.
measure() {
  local name=$1 url="http://127.0.0.1:$port/v1"
  "$bin" bench --base-url "$url" --concurrency 1 --requests 1 --max-tokens 8 >/dev/null
  # SmolLM2's end-of-text ids are banned so every request makes max_tokens.
  local common=(--base-url "$url" --temperature 0.7 --logit-bias 0=-100 --logit-bias 2=-100 --json --timeout 300)
  # Prompts first, while the KV cache holds only the warm-up: KV kept for
  # reuse widens the attention window of every later prompt, on every server.
  prompt=$("$bin" bench "${common[@]}" --max-tokens 2 --concurrency 1 --requests 4 --unique --prompt "$long_prompt" | tail -1)
  one=$("$bin" bench "${common[@]}" --max-tokens "$max_tokens" --concurrency 1 --requests "$requests_1" | tail -1)
  eight=$("$bin" bench "${common[@]}" --max-tokens "$max_tokens" --concurrency 8 --requests "$requests_8" | tail -1)
  python3 - "$name" "$one" "$eight" "$prompt" <<'EOF'
import json, sys
name, one, eight, prompt = sys.argv[1], *map(json.loads, sys.argv[2:])
print(json.dumps({"server": name, "decode_1": one["decode_tok_s_p50"],
                  "aggregate_8": eight["aggregate_tok_s"], "ttft_p50_8": eight["ttft_p50_s"],
                  "prompt": prompt["prompt_tok_s_p50"]}))
EOF
}

run_ferrite() {
  "$bin" serve --model "$model" --port "$port" --no-cache --runtime "$1" >"$log" 2>&1 &
  server=$!
  wait_ready ready
  measure "ferrite ($1)" >>/tmp/ferrite-bench-runtimes.jsonl
  kill $server
  wait $server 2>/dev/null || true
}

: >/tmp/ferrite-bench-runtimes.jsonl
trap 'kill $server 2>/dev/null || true' EXIT
echo "model $model, $threads threads, max_tokens $max_tokens" >&2

run_llama_server() {
  # llama-server as LM Studio runs it: 8 slots sharing one unified KV cache.
  "$llama_server" -m "$model" --port "$port" -t "$threads" -np 8 -c 16384 --kv-unified \
    --no-webui >"$log" 2>&1 &
  server=$!
  wait_ready health
  measure "llama-server" >>/tmp/ferrite-bench-runtimes.jsonl
  kill $server
  wait $server 2>/dev/null || true
}

for _ in 1 2; do
  run_ferrite llama.cpp
  if [[ -n $llama_server ]]; then run_llama_server; fi
done
run_ferrite mistral.rs

python3 - /tmp/ferrite-bench-runtimes.jsonl <<'EOF'
import json, sys
rows = {}
for r in map(json.loads, open(sys.argv[1])):
    best = rows.setdefault(r["server"], r)
    for k in ("decode_1", "aggregate_8", "prompt"):
        best[k] = max(best[k], r[k])
    best["ttft_p50_8"] = min(best["ttft_p50_8"], r["ttft_p50_8"])
order = ["ferrite (llama.cpp)", "ferrite (mistral.rs)", "llama-server"]
rows = {n: rows[n] for n in order if n in rows}
cols = [("decode_1", "decode, 1 stream, tok/s"), ("aggregate_8", "aggregate, 8 streams, tok/s"),
        ("prompt", "prompt processing, tok/s"), ("ttft_p50_8", "TTFT p50 at 8 streams, s")]
names = list(rows)
print("| measure | " + " | ".join(names) + " | llama.cpp / mistral.rs |"
      + (" ferrite (llama.cpp) / llama-server |" if "llama-server" in rows else ""))
print("|---" * (len(names) + 2 + ("llama-server" in rows)) + "|")
for key, label in cols:
    vals = [rows[n][key] for n in names]
    line = f"| {label} | " + " | ".join(f"{v:.2f}" if key == "ttft_p50_8" else f"{v:.1f}" for v in vals)
    a, b = rows["ferrite (llama.cpp)"][key], rows["ferrite (mistral.rs)"][key]
    ratio = b / a if key == "ttft_p50_8" else a / b
    line += f" | {ratio:.2f}x |"
    if "llama-server" in rows:
        c = rows["llama-server"][key]
        line += f" {(c / a if key == 'ttft_p50_8' else a / c):.2f}x |"
    print(line)
print("(ratios: higher is better for ferrite on llama.cpp; TTFT ratios are inverted so)")
EOF
