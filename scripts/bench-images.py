#!/usr/bin/env python3
"""Time to first token with and without an image, on ferrite and on
llama.cpp's llama-server with the same files, one server after the other.

    bench-images.py FERRITE_BIN MODEL MMPROJ [LLAMA_SERVER]

Each request asks for one token (its latency is the time to first token):
a text-only chat, the same chat with a new image each time (nothing to
reuse), and with the same image again (prefix reuse through the image).
Prints one JSON line per server and measure (median seconds of
BENCH_REQUESTS, default 8, after two warm-ups) and the ratios."""
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

PORT = int(os.environ.get("BENCH_PORT", "18125"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "8"))
QUESTION = "Describe this picture in one short sentence, please."


def png(seed, side=224):
    rng = random.Random(seed)
    raw = b"".join(b"\0" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def data_url(seed):
    import base64
    return "data:image/png;base64," + base64.b64encode(png(seed)).decode()


def ask(image=None):
    content = [{"type": "text", "text": QUESTION}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": image}})
    body = json.dumps({"messages": [{"role": "user", "content": content}],
                       "max_tokens": 1, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        reply = json.load(r)
    return time.perf_counter() - start, reply["usage"]["prompt_tokens"]


def wait_ready(proc, path):
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def measure(name, argv, ready):
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        wait_ready(proc, ready)
        for seed in (1, 2):
            ask(data_url(1000 + seed))
        seed = 2000
        rows = {}
        for measure_name, image in (("text", lambda: None),
                                    ("new_image", lambda: data_url(seed + len(times))),
                                    ("same_image", lambda: data_url(1))):
            times, tokens = [], 0
            for _ in range(REQUESTS):
                t, tokens = ask(image())
                times.append(t)
            seed += 1000
            rows[measure_name] = (statistics.median(times), tokens)
        out = {"server": name}
        for k, (t, tokens) in rows.items():
            out[f"{k}_s"] = round(t, 3)
            out[f"{k}_prompt_tokens"] = tokens
        print(json.dumps(out), flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    ferrite, model, mmproj = sys.argv[1:4]
    llama_server = sys.argv[4] if len(sys.argv) > 4 else None
    threads = str(os.cpu_count() or 1)
    results = [measure("ferrite", [ferrite, "serve", "--model", model, "--mmproj", mmproj,
                                   "--port", str(PORT), "--no-cache", "--runtime", "llama.cpp"], "/ready")]
    if llama_server:
        results.append(measure("llama-server", [llama_server, "-m", model, "--mmproj", mmproj,
                                                "--port", str(PORT), "-t", threads, "-np", "4",
                                                "-c", "8192", "--no-webui"], "/health"))
    f = results[0]
    print(f"ferrite: an image adds {f['new_image_s'] - f['text_s']:.3f} s to the first token "
          f"({f['new_image_s'] / f['text_s']:.2f}x text only); the same image again "
          f"{f['same_image_s'] / f['text_s']:.2f}x")
    if len(results) > 1:
        l = results[1]
        for k in ("text_s", "new_image_s", "same_image_s"):
            print(f"{k}: llama-server / ferrite = {l[k] / f[k]:.2f}")


if __name__ == "__main__":
    main()
