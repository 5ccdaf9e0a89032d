#!/usr/bin/env python3
"""What Ollama's route costs over /v1/chat/completions: one server, the
response cache on, one greedy request repeated so that every answer after the
first is a cache hit and the route's own work (parse, translate, fold,
render) is most of the time. Requests alternate between the routes on one
keep-alive connection, with `GET /health` as the round trip any request pays.
Prints p50/p99 per route and the ratios.

  bench-ollama.py BIN MODEL [REQUESTS]
"""
import json
import statistics
import subprocess
import sys
import time

import httpx

bin_, model = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
port = 18127
server = subprocess.Popen(
    [bin_, "serve", "--model", model, "--port", str(port)],
    env={"FERRITE_CACHE__ENABLED": "true", "FERRITE_REGISTRY__SCAN": "false", "PATH": "/usr/bin:/bin"},
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
url = f"http://127.0.0.1:{port}"
try:
    client = httpx.Client(timeout=60)
    while True:
        try:
            if client.get(f"{url}/ready").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    messages = [{"role": "user", "content": "Say hi."}]
    routes = {
        "GET /health": ("GET", "/health", None),
        "POST /v1/chat/completions": ("POST", "/v1/chat/completions",
                                      {"messages": messages, "max_tokens": 8, "temperature": 0}),
        "POST /api/chat": ("POST", "/api/chat", {"model": "smollm2-135m-instruct", "messages": messages,
                                                 "stream": False, "options": {"num_predict": 8, "temperature": 0}}),
        "POST /api/chat (NDJSON)": ("POST", "/api/chat", {"model": "smollm2-135m-instruct", "messages": messages,
                                                          "options": {"num_predict": 8, "temperature": 0}}),
    }
    times = {name: [] for name in routes}
    for i in range(n + 20):  # 20 to warm: the cache entry, the connection
        for name, (method, path, body) in routes.items():
            t = time.perf_counter()
            r = client.request(method, f"{url}{path}", json=body)
            r.read()
            ms = (time.perf_counter() - t) * 1000
            r.raise_for_status()
            if body is not None:
                assert r.headers.get("x-ferrite-cache") == "hit" or i == 0, r.headers
            if i >= 20:
                times[name].append(ms)
    rows = {}
    for name, ts in times.items():
        ts.sort()
        rows[name] = {"p50_ms": round(statistics.median(ts), 3), "p99_ms": round(ts[int(0.99 * (len(ts) - 1))], 3)}
        print(json.dumps({"route": name, "requests": n, **rows[name]}))
    v1 = rows["POST /v1/chat/completions"]["p50_ms"]
    for name in ("POST /api/chat", "POST /api/chat (NDJSON)"):
        print(f"{name}: {rows[name]['p50_ms'] / v1:.2f}x /v1/chat/completions at p50 "
              f"({rows[name]['p50_ms'] - v1:+.3f} ms)")
finally:
    server.terminate()
    server.wait()
