"""A local server that speaks the Hugging Face Hub's HTTP API, over real
files, for ferrite's download code to be tested against (the Hub itself
cannot be reached from these machines; only the endpoint differs).

It answers what `huggingface_hub` and ferrite use: the tree API with
`Link` pagination, model search, and `resolve/{revision}/{path}`, whose LFS
files redirect to a second host (a CDN of its own, on another port) with
`X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit`; refusals carry
`X-Error-Code` (`GatedRepo`, `RepoNotFound`, `EntryNotFound`). The CDN
answers `Range` with 206, and can be told to cut a body short, to ignore
ranges, or to go slowly, and it records what it served.

  python hub_server.py REPOS.json    # prints the two ports, serves until killed
"""
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PAGE = 2  # tree entries a page: small, so that pagination is exercised


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Hub:
    """Repos: {"owner/name": {"files": {path: local file or bytes}, "gated":
    bool, "token": str, "downloads": int, "tags": [...], "wrong_sha": bool,
    "rate": bytes a second for its bodies}}."""

    def __init__(self, repos):
        self.repos = repos
        self.blobs = {}  # sha256 -> local path or bytes
        self.served = []  # (sha256, first byte, bytes sent, headers) per CDN request
        self.cut_next = None  # bytes to send before cutting the next body short
        self.ignore_ranges = False
        self.rate = None  # bytes a second for bodies, when slowed
        self.rates = {}  # sha256 -> bytes a second, for repos always slow
        self.lock = threading.Lock()
        for repo in repos.values():
            entries = {}
            for path, source in repo["files"].items():
                if isinstance(source, str):
                    size, sha = os.path.getsize(source), sha256_of(source)
                else:
                    size, sha = len(source), hashlib.sha256(source).hexdigest()
                lfs = path.endswith(".gguf")
                listed = ("0" * 64) if repo.get("wrong_sha") and lfs else sha
                entries[path] = {"size": size, "sha": sha, "listed": listed, "lfs": lfs, "source": source}
                self.blobs[sha] = source
                if repo.get("rate"):
                    self.rates[sha] = repo["rate"]
            repo["entries"] = entries

    def start(self):
        hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self, cdn=False))
        cdn = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self, cdn=True))
        self.cdn_port = cdn.server_address[1]
        self.port = hub.server_address[1]
        for server in (hub, cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers = (hub, cdn)
        return self

    def stop(self):
        for server in self.servers:
            server.shutdown()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


def make_handler(hub, cdn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=None, content_type="application/json"):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def refuse(self, status, code, message):
            self.reply(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urlparse(self.path)
            path = unquote(url.path)
            query = parse_qs(url.query)
            if cdn:
                try:
                    return self.blob(path)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client cancelled: nothing to report
            if path == "/api/models":
                return self.search(query)
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path)
            if m:
                return self.tree(m[1], query)
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                return self.resolve(m[1], m[3])
            self.reply(404, {"error": "no such route"})

        def repo(self, name):
            repo = hub.repos.get(name)
            if repo is None:
                self.refuse(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
            return repo

        def search(self, query):
            words = query.get("search", [""])[0].lower().split()
            limit = int(query.get("limit", ["20"])[0])
            found = [
                {"id": name, "modelId": name, "downloads": repo.get("downloads", 0),
                 "likes": 0, "tags": repo.get("tags", ["gguf"])}
                for name, repo in hub.repos.items()
                if all(w in name.lower() for w in words)
            ]
            found.sort(key=lambda r: -r["downloads"])
            self.reply(200, found[:limit])

        def tree(self, name, query):
            repo = self.repo(name)
            if repo is None:
                return
            entries = [
                {"type": "file", "oid": e["sha"][:40], "size": e["size"], "path": p,
                 **({"lfs": {"oid": e["listed"], "size": e["size"], "pointerSize": 134}} if e["lfs"] else {})}
                for p, e in sorted(repo["entries"].items())
            ]
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start:start + PAGE]
            headers = {}
            if start + PAGE < len(entries):
                headers["Link"] = f'<{hub.url}/api/models/{name}/tree/main?recursive=true&cursor={start + PAGE}>; rel="next"'
            self.reply(200, page, headers)

        def resolve(self, name, path):
            repo = self.repo(name)
            if repo is None:
                return
            if repo.get("gated") and self.headers.get("Authorization") != f"Bearer {repo.get('token')}":
                return self.refuse(401, "GatedRepo", f"Access to model {name} is restricted.")
            entry = repo["entries"].get(path)
            if entry is None:
                return self.refuse(404, "EntryNotFound", f"{path} does not exist on main")
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{entry["sha"][:40]}"'}
            if not entry["lfs"]:
                return self.reply(200, body_of(entry["source"]), headers, "text/plain")
            headers.update({
                "X-Linked-Etag": f'"{entry["listed"]}"',
                "X-Linked-Size": str(entry["size"]),
                "Location": f"http://127.0.0.1:{hub.cdn_port}/blobs/{entry['sha']}",
            })
            self.reply(302, b"", headers)

        def blob(self, path):
            sha = path.rsplit("/", 1)[-1]
            source = hub.blobs.get(sha)
            if source is None:
                return self.reply(404, b"no such blob")
            data_size = os.path.getsize(source) if isinstance(source, str) else len(source)
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if m and not hub.ignore_ranges:
                start = int(m[1])
                if start >= data_size:
                    return self.reply(416, b"", {"Content-Range": f"bytes */{data_size}"})
            with hub.lock:
                cut, hub.cut_next = hub.cut_next, None
            record = {"sha": sha, "from": start, "sent": 0, "auth": self.headers.get("Authorization")}
            hub.served.append(record)
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(data_size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{data_size - 1}/{data_size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            data = body_of(source)
            pos, began = start, time.time()
            rate = hub.rates.get(sha, hub.rate)
            while pos < data_size:
                end = min(pos + (64 << 10), data_size)
                if cut is not None and pos - start + (end - pos) > cut:
                    end = start + cut
                    self.wfile.write(data[pos:end])
                    record["sent"] += end - pos
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[pos:end])
                record["sent"] += end - pos
                pos = end
                if rate:
                    ahead = record["sent"] / rate - (time.time() - began)
                    if ahead > 0:
                        time.sleep(ahead)

    return Handler


def downloading_from(hub, root):
    """The environment under which ferrite lists `root/models` and downloads
    into it from `hub`."""
    (root / "models").mkdir(exist_ok=True)
    return {
        "FERRITE_REGISTRY__SCAN": "true",
        "FERRITE_REGISTRY__DIR": str(root / "models"),
        "FERRITE_DOWNLOADS__ENDPOINT": hub.url,
        "FERRITE_DOWNLOADS__HF_CACHE": str(root / "hf"),
    }


_cache = {}


def body_of(source):
    if isinstance(source, bytes):
        return source
    if source not in _cache:
        with open(source, "rb") as f:
            _cache[source] = f.read()
    return _cache[source]


if __name__ == "__main__":
    hub = Hub(json.load(open(sys.argv[1]))).start()
    print(hub.port, hub.cdn_port, flush=True)
    threading.Event().wait()
