"""Hostile use of the newer surfaces, against the real server and model:
model management needs the `models:manage` scope (API keys and JWTs, REST,
the openai SDK and LM Studio's SDK), a `context_length` past the trained one
is a 400 on every route, an SDK socket whose client never reads cannot take
the server's memory, and SIGTERM exits within the drain time whatever is
running. None of this depends on the runtime, so it runs once."""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import socket
import threading
import time

import httpx
import lmstudio as lms
import openai
import pytest
import wsproto
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from conftest import PROCESSES, ROOT, _serve

ALICE = "sk-alice-chat-only"
BOB = "sk-bob-all-scopes"
SECRET = "a-long-shared-secret-for-the-hold-tests"
Q8 = os.environ.get("FERRITE_TEST_MODEL_Q8", str(ROOT / "models/SmolLM2-135M-Instruct.Q8_0.gguf"))
MODEL = "smollm2-135m-instruct"
# What SmolLM2-135M was trained for (its GGUF's context_length).
TRAINED = 8192


def jwt(sub, scope):
    def part(value):
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part({"alg": "HS256", "typ": "JWT"})
    body = part({"sub": sub, "exp": int(time.time()) + 600, "scope": scope})
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def hold(tmp_path_factory):
    """Two keys (alice: chat only; bob: every scope), JWTs, and a second
    model to load and unload."""
    config = tmp_path_factory.mktemp("hold") / "ferrite.toml"
    config.write_text(
        "[registry]\nscan = false\nmax_loaded_models = 2\n"
        f'[[registry.models]]\nid = "smol-q8"\npath = "{Q8}"\n'
        f'[[registry.models]]\nid = "smol-yarn"\npath = "{Q8}"\nrope_scaling = "yarn"\n'
        f'[[auth.api_keys]]\nname = "alice"\nkey = "{ALICE}"\nscopes = ["chat"]\n'
        f'[[auth.api_keys]]\nname = "bob"\nkey = "{BOB}"\n'
        f'[auth.jwt]\nalgorithm = "HS256"\nsecret = "{SECRET}"\n'
    )
    yield from _serve({"FERRITE_CONFIG": str(config)})


def root(url):
    return url.removesuffix("/v1")


def host(url):
    return root(url).removeprefix("http://")


def post(url, path, token, body):
    return httpx.post(f"{root(url)}{path}", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {token}"})


def loaded_context(url, model=MODEL):
    models = httpx.get(f"{root(url)}/api/v1/models", timeout=30,
                       headers={"Authorization": f"Bearer {BOB}"}).json()["models"]
    (found,) = [m for m in models if m["key"] == model]
    return [i["config"]["context_length"] for i in found["loaded_instances"]]


def assert_needs_scope(r):
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_scope", error
    assert "models:manage" in error["message"], error


def test_loading_and_unloading_need_models_manage(hold):
    for token in [ALICE, jwt("carol", "chat memory:write")]:
        assert_needs_scope(post(hold, "/api/v1/models/load", token, {"model": "smol-q8"}))
        assert_needs_scope(post(hold, "/api/v1/models/load", token,
                                {"model": "smol-q8", "stream": True}))
        assert_needs_scope(post(hold, "/api/v1/models/unload", token, {"instance_id": MODEL}))
        assert loaded_context(hold) == [TRAINED], "the model is still there"
    for token in [BOB, jwt("dave", "chat models:manage")]:
        r = post(hold, "/api/v1/models/load", token, {"model": "smol-q8"})
        assert r.status_code == 200, r.text
        assert loaded_context(hold, "smol-q8")
        r = post(hold, "/api/v1/models/unload", token, {"instance_id": "smol-q8"})
        assert r.status_code == 200, r.text
        assert loaded_context(hold, "smol-q8") == []


def test_a_chat_reloads_a_model_only_with_the_scope(hold):
    alice = openai.OpenAI(base_url=hold, api_key=ALICE)
    bob = openai.OpenAI(base_url=hold, api_key=BOB)

    def ask(client, context=None):
        extra = {} if context is None else {"context_length": context}
        return client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=2, extra_body=extra)

    assert ask(alice).choices[0].message.content is not None
    assert ask(alice, TRAINED).choices, "the loaded context needs nothing"
    with pytest.raises(openai.PermissionDeniedError, match="models:manage"):
        ask(alice, 1024)
    assert loaded_context(hold) == [TRAINED], "refused before anything reloaded"
    assert ask(bob, 1024).choices
    assert loaded_context(hold) == [1024]
    assert ask(alice, 1024).choices, "now the loaded context"
    with pytest.raises(openai.PermissionDeniedError):
        ask(alice, TRAINED)
    assert ask(bob, TRAINED).choices
    assert loaded_context(hold) == [TRAINED]


def test_a_context_past_the_trained_one_is_400_on_each_route(hold):
    huge = 50_000_000
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 2, "context_length": huge}
    for path, body in [
        ("/v1/chat/completions", chat),
        ("/api/v0/chat/completions", chat),
        ("/v1/chat/completions", {**chat, "stream": True}),
        ("/api/v1/models/load", {"model": "smol-q8", "context_length": huge}),
        ("/api/v1/models/load", {"model": "smol-q8", "context_length": huge, "stream": True}),
    ]:
        r = post(hold, path, BOB, body)
        assert r.status_code == 400, (path, r.text)
        error = r.json()["error"]
        assert error["param"] == "context_length", (path, error)
        assert str(TRAINED) in error["message"], (path, error)
    assert loaded_context(hold) == [TRAINED]
    with keyed(hold, BOB) as c:
        with pytest.raises(lms.LMStudioServerError, match=str(TRAINED)):
            c.llm.load_new_instance("smol-q8", config={"contextLength": huge})


def test_rope_scaling_allows_a_longer_context_where_the_entry_says_so(hold):
    r = post(hold, "/api/v1/models/load", BOB,
             {"model": "smol-yarn", "context_length": 2 * TRAINED, "echo_load_config": True})
    assert r.status_code == 200, r.text
    assert r.json()["load_config"]["context_length"] == 2 * TRAINED
    assert loaded_context(hold, "smol-yarn") == [2 * TRAINED]
    answer = openai.OpenAI(base_url=hold, api_key=BOB).chat.completions.create(
        model="smol-yarn", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert answer.choices[0].message.content is not None
    assert post(hold, "/api/v1/models/unload", BOB, {"instance_id": "smol-yarn"}).status_code == 200


def keyed(url, key):
    class Keyed(lms.Client):
        def _create_auth_message(self):
            return self._format_auth_message("hold-test", key)

    return Keyed(host(url))


def test_the_sdk_needs_the_scope_to_manage_models(hold):
    with keyed(hold, ALICE) as c:
        model = c.llm.model()
        assert model.respond("Hi", config={"maxTokens": 2}).content is not None
        with pytest.raises(lms.LMStudioServerError, match="models:manage"):
            c.llm.unload(MODEL)
        with pytest.raises(lms.LMStudioServerError, match="models:manage"):
            c.llm.load_new_instance("smol-q8")
        with pytest.raises(lms.LMStudioServerError, match="models:manage"):
            c.llm.model(MODEL, config={"contextLength": 1024})
        # Just in time, at the context the model has: a chat user's right.
        assert c.llm.model(MODEL, config={"contextLength": TRAINED}).identifier == MODEL
    assert loaded_context(hold) == [TRAINED]
    with keyed(hold, BOB) as c:
        assert c.llm.load_new_instance("smol-q8").identifier == "smol-q8"
        c.llm.unload("smol-q8")
    assert loaded_context(hold, "smol-q8") == []


# A socket client of LM Studio's protocol that sends and only reads when told.
class Raw:
    def __init__(self, url, namespace="llm"):
        self.sock = socket.create_connection((host(url).split(":")[0], int(host(url).split(":")[1])))
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.buffer = []
        self.pending = []
        self.sock.sendall(self.ws.send(Request(host=host(url), target=f"/{namespace}")))
        while not any(isinstance(e, AcceptConnection) for e in self.events() or []):
            pass
        self.send({"authVersion": 1, "clientIdentifier": "raw", "clientPasskey": "x"})
        assert self.receive() == {"success": True}

    def events(self):
        """What arrived; None once the server has closed the connection."""
        if not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        events, self.pending = self.pending, []
        return events

    def send(self, value):
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(value))))

    def receive(self):
        """The next message, or None once the server closed the socket."""
        while True:
            events = self.events()
            if events is None:
                return None
            for k, e in enumerate(events):
                if isinstance(e, TextMessage):
                    self.buffer.append(e.data)
                    if e.message_finished:
                        # The rest waits for the next call.
                        self.pending = events[k + 1:] + self.pending
                        text = "".join(self.buffer)
                        self.buffer.clear()
                        return json.loads(text)
                elif isinstance(e, CloseConnection):
                    return None
            if self.ws.state == wsproto.connection.ConnectionState.CLOSED:
                return None

    def tokenize(self, call_id, text):
        self.send({"type": "rpcCall", "endpoint": "tokenize", "callId": call_id,
                   "parameter": {"specifier": {"type": "query", "query": {}}, "inputString": text}})


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib // 1024


@pytest.fixture(scope="module")
def sockets():
    """Auth off, as LM Studio runs by default; a client that reads nothing
    is cut off after 5 seconds."""
    yield from _serve({"FERRITE_HTTP__SLOW_CLIENT_SECS": "5"})


def test_calls_past_the_sockets_bound_get_the_protocols_error(sockets):
    raw = Raw(sockets)
    text = "lorem ipsum dolor " * (2_000_000 // 18)
    for call in range(20):
        raw.tokenize(call, text)
    answers = [raw.receive() for _ in range(20)]
    results = [a for a in answers if a["type"] == "rpcResult"]
    refused = [a for a in answers if a["type"] == "rpcError"]
    assert results and refused, [a["type"] for a in answers]
    assert all("in flight" in a["error"]["title"] for a in refused), refused[0]
    assert len(results[0]["result"]["tokens"]) > 100_000
    raw.sock.close()


def test_a_socket_that_never_reads_cannot_take_the_servers_memory(sockets):
    pid = PROCESSES[sockets].pid
    # Warm up first: the KV cache's pages and the tokenizer's buffers are
    # the server's own memory, touched by any use, not the attack's.
    warm = openai.OpenAI(base_url=sockets, api_key="x")
    for _ in range(3):
        warm.chat.completions.create(model=MODEL, max_tokens=8,
                                     messages=[{"role": "user", "content": "Name a colour."}])
    reader = Raw(sockets)
    reader.tokenize(0, "lorem ipsum dolor " * (2_000_000 // 18))
    assert reader.receive()["type"] == "rpcResult"
    reader.sock.close()
    before = rss_mib(pid)
    peak = [before]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.05)

    served = []

    def chat():
        client = openai.OpenAI(base_url=sockets, api_key="x")
        while not stop.is_set():
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=8, stream=True)
            served.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=watch), threading.Thread(target=chat)]
    for t in threads:
        t.start()
    raw = Raw(sockets)
    # Just under `limits.max_tokenize_bytes`: each call runs, and its answer
    # (half a million token ids) is larger than what it asked.
    text = "lorem ipsum dolor " * (2_000_000 // 18)
    sent = 0
    started = time.time()
    # Calls keep coming (as running ones finish, new ones run) and the
    # answers pile up unread, past the socket's budget and the kernel's
    # buffers; within its 5 seconds the server closes the socket.
    try:
        while time.time() - started < 60:
            raw.tokenize(sent, text)
            sent += 1
            time.sleep(0.05)
    except OSError:
        pass  # closed: the sends fail
    closed_after = time.time() - started
    raw.sock.settimeout(30)
    while raw.receive() is not None:
        pass
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    grown = peak[0] - before
    print(f"sent {sent} calls of 2 MB; closed after {closed_after:.1f} s; RSS {before} MiB, peak +{grown} MiB; {len(served)} chats served")
    # The socket holds at most 8 MiB of calls and 8 MiB of answers; the
    # rest is the tokenizer's working memory for two 2 MB texts at a time
    # (about 45 MiB each, as much as a client that reads causes), kept by
    # the allocator once touched. Before the bounds: 9.1 GiB in a minute.
    assert grown < 384, f"RSS grew by {grown} MiB"
    assert closed_after < 45, f"still open after {closed_after:.0f}s"
    assert len(served) >= 2 and all(served), served
    # Another client is served as before.
    fresh = Raw(sockets)
    fresh.tokenize(1, "Hello there")
    assert fresh.receive()["result"]["tokens"]


def test_sigterm_exits_within_the_drain_time_whatever_runs():
    server = _serve({"FERRITE_HTTP__DRAIN_TIMEOUT_SECS": "2"})
    url = next(server)
    proc = PROCESSES[url]
    idle = Raw(url)  # an SDK socket that stays open
    client = openai.OpenAI(base_url=url, api_key="x")
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a very long story."}],
        max_tokens=4000, stream=True, logit_bias={"0": -100, "2": -100})
    next(iter(stream))
    huge = {"model": MODEL, "max_tokens": 4,
            "messages": [{"role": "user", "content": "<|im_end|>" * 1_500_000}]}
    threading.Thread(target=lambda: httpx.post(f"{root(url)}/v1/chat/completions",
                                               json=huge, timeout=60), daemon=True).start()
    time.sleep(0.5)
    started = time.time()
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    assert time.time() - started < 2 + 6, time.time() - started
    idle.sock.close()
    with pytest.raises(StopIteration):
        next(server)
