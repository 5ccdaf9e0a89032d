"""The desktop system's orchestrator API (`[orchestrator]`), called with plain
`requests` as its clients call it: /chat, /chat/stream, /conversation,
/generate, /health and /info under a prefix, a conversation per tenant kept
in the memory store (by the memory layer when memory is on, else by the
orchestrator itself), and context documents read again when they change."""
import json
import os

import pytest
import requests

from conftest import _serve

ALICE = {"Authorization": "Bearer sk-alice"}
BOB = {"Authorization": "Bearer sk-bob"}


@pytest.fixture(scope="module", params=["memory-on", "memory-off"])
def orch(request, tmp_path_factory):
    """A server with the orchestrator under /orchestrator, a briefing
    document and two tenants; with memory on and off."""
    tmp = tmp_path_factory.mktemp("orchestrator")
    brief = tmp / "brief.md"
    brief.write_text("The project codename is Kestrel.")
    config = tmp / "ferrite.toml"
    config.write_text(
        f"[memory]\nenabled = {'true' if request.param == 'memory-on' else 'false'}\n"
        "[orchestrator]\nenabled = true\nprefix = \"/orchestrator\"\nmax_tokens = 16\n"
        f"documents = [\"{brief}\"]\n"
        '[[auth.api_keys]]\nname = "alice"\nkey = "sk-alice"\n'
        '[[auth.api_keys]]\nname = "bob"\nkey = "sk-bob"\n'
    )
    for v1 in _serve({"FERRITE_CONFIG": str(config)}):
        yield v1.removesuffix("/v1"), brief


def tokens(base, text):
    r = requests.post(f"{base}/tokenize", json={"content": text}, headers=ALICE)
    return len(r.json()["tokens"])


def chat(base, headers, message, **extra):
    r = requests.post(f"{base}/orchestrator/chat", json={"message": message, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_health_and_info(orch):
    base, brief = orch
    health = requests.get(f"{base}/orchestrator/health", headers=ALICE)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model": "smollm2-135m-instruct"}
    info = requests.get(f"{base}/orchestrator/info", headers=ALICE).json()
    assert info["name"] == "ferrite" and info["version"]
    assert info["model"] == "smollm2-135m-instruct"
    assert info["context_length"] > 0
    assert info["documents"] == [str(brief)]
    assert requests.get(f"{base}/orchestrator/info").status_code == 401


def test_a_conversation_per_tenant_goes_with_every_message(orch):
    base, _ = orch
    requests.delete(f"{base}/orchestrator/conversation", headers=ALICE)
    first = chat(base, ALICE, "Hello! My name is Ada.")
    assert first["response"] and first["conversation"] == "orchestrator"
    assert first["usage"]["completion_tokens"] <= 16
    second = chat(base, ALICE, "What is my name?")
    # The first exchange went with the second message.
    carried = tokens(base, "Hello! My name is Ada.") + tokens(base, first["response"])
    grew = second["usage"]["prompt_tokens"] - first["usage"]["prompt_tokens"]
    assert grew >= carried, (grew, carried)
    history = requests.get(f"{base}/orchestrator/conversation", headers=ALICE).json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"] * 2
    assert history["messages"][0]["content"] == "Hello! My name is Ada."
    assert history["messages"][1]["content"] == first["response"]
    assert history["messages"][3]["content"] == second["response"]
    # Bob's conversation is his own.
    bob = requests.get(f"{base}/orchestrator/conversation", headers=BOB).json()
    assert "Ada" not in json.dumps(bob)
    cleared = requests.delete(f"{base}/orchestrator/conversation", headers=ALICE).json()
    assert cleared == {"status": "cleared", "deleted": 2}
    after = requests.get(f"{base}/orchestrator/conversation", headers=ALICE).json()
    assert after["messages"] == []


def test_streaming_sends_deltas_then_the_whole_reply(orch):
    base, _ = orch
    requests.delete(f"{base}/orchestrator/conversation", headers=BOB)
    r = requests.post(
        f"{base}/orchestrator/chat/stream", json={"message": "Tell me a short story."},
        headers=BOB, stream=True,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    deltas = "".join(e["delta"] for e in events if "delta" in e)
    done = events[-1]
    assert done["done"] is True and deltas == done["response"]
    assert done["usage"]["completion_tokens"] > 0
    history = requests.get(f"{base}/orchestrator/conversation", headers=BOB).json()
    assert history["messages"][-1]["content"] == done["response"]


def test_documents_and_context_reach_the_prompt(orch):
    base, brief = orch
    requests.delete(f"{base}/orchestrator/conversation", headers=BOB)
    plain = chat(base, BOB, "Summarize the briefing.")["usage"]["prompt_tokens"]
    requests.delete(f"{base}/orchestrator/conversation", headers=BOB)
    note = "The meeting moved to Thursday at noon in room 4."
    with_context = chat(base, BOB, "Summarize the briefing.", context=note)["usage"]["prompt_tokens"]
    assert with_context - plain >= tokens(base, note), (plain, with_context)
    # A changed document is read again on the next message.
    addition = " It ships in May to three customers in Lisbon, Porto and Faro."
    brief.write_text(brief.read_text() + addition)
    stamp = os.stat(brief).st_mtime + 5
    os.utime(brief, (stamp, stamp))
    requests.delete(f"{base}/orchestrator/conversation", headers=BOB)
    longer = chat(base, BOB, "Summarize the briefing.")["usage"]["prompt_tokens"]
    assert longer - plain >= tokens(base, addition) - 2, (plain, longer)


def test_generate_is_a_raw_completion(orch):
    base, _ = orch
    r = requests.post(
        f"{base}/orchestrator/generate",
        json={"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}, headers=ALICE,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["usage"]["completion_tokens"] <= 8
    same = requests.post(
        f"{base}/v1/completions",
        json={"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}, headers=ALICE,
    ).json()
    assert out["text"] == same["choices"][0]["text"]


def test_bad_input_is_a_clear_400(orch):
    base, _ = orch
    for path, body in [
        ("/orchestrator/chat", {"message": ""}),
        ("/orchestrator/chat", {"context": "no message"}),
        ("/orchestrator/chat", {"message": 42}),
        ("/orchestrator/generate", {"prompt": ""}),
        ("/orchestrator/generate", {"prompt": "x", "max_tokens": -1}),
    ]:
        r = requests.post(f"{base}{path}", json=body, headers=ALICE)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = requests.post(f"{base}/orchestrator/chat", data="{not json", headers={**ALICE, "content-type": "application/json"})
    assert r.status_code == 400


def test_off_by_default(base_url):
    base = base_url.removesuffix("/v1")
    assert requests.post(f"{base}/orchestrator/chat", json={"message": "hi"}).status_code == 404
