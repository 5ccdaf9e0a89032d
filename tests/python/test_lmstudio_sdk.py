"""LM Studio's own SDKs against the real server: the Python `lmstudio`
package (pinned in requirements.txt), the JS `@lmstudio/sdk` (tests/node),
and the raw protocol where the SDKs cannot reach (bad frames)."""
import json
import os
import pathlib
import subprocess
import time
import urllib.request

import httpx
import lmstudio as lms
import numpy as np
import openai
import pytest
from httpx_ws import connect_ws
from pydantic import BaseModel

from conftest import _serve

ROOT = pathlib.Path(__file__).resolve().parents[2]
LMS_TOKEN = "sk-lm-ferrite1:abcdefghij0123456789"


def host(url):
    return url.removeprefix("http://").removesuffix("/v1")


@pytest.fixture(scope="module")
def client(base_url):
    with lms.Client(host(base_url)) as c:
        yield c


@pytest.fixture(scope="module")
def token_url():
    """A server whose API key is in LM Studio's token form."""
    yield from _serve({"FERRITE_AUTH__API_KEY": LMS_TOKEN})


def test_the_greeting_says_lm_studio(base_url):
    with urllib.request.urlopen(f"http://{host(base_url)}/lmstudio-greeting") as r:
        assert json.load(r)["lmstudio"] is True
    assert lms.Client.is_valid_api_host(host(base_url))


def test_respond_takes_the_same_road_as_chat_completions(client, base_url):
    model = client.llm.model()
    assert model.identifier in [m.identifier for m in client.llm.list_loaded()]
    result = model.respond("Name a color.", config={"maxTokens": 12, "temperature": 0})
    oai = openai.OpenAI(base_url=base_url, api_key="x").chat.completions.create(
        model=model.identifier, messages=[{"role": "user", "content": "Name a color."}],
        max_tokens=12, temperature=0,
    )
    assert result.content == oai.choices[0].message.content
    assert result.stats.predicted_tokens_count == oai.usage.completion_tokens
    assert result.stats.prompt_tokens_count == oai.usage.prompt_tokens
    assert result.stats.stop_reason in ("eosFound", "maxPredictedTokensReached")
    assert result.model_info.model_key == model.identifier


def test_a_stream_arrives_in_fragments(client):
    model = client.llm.model()
    first, progress = [], []
    stream = model.respond_stream(
        "Tell me about the sea.", config={"maxTokens": 24, "temperature": 0},
        on_first_token=lambda: first.append(True),
        on_prompt_processing_progress=progress.append,
    )
    fragments = [f.content for f in stream]
    result = stream.result()
    assert len(fragments) > 1 and "".join(fragments) == result.content
    assert first == [True] and progress[-1] == 1.0
    assert result.stats.stop_reason == "maxPredictedTokensReached"
    assert result.stats.predicted_tokens_count == 24


def test_cancelling_a_stream_stops_it(client):
    model = client.llm.model()
    stream = model.respond_stream("Count to a thousand.", config={"maxTokens": 2000})
    seen = []
    for fragment in stream:
        seen.append(fragment.content)
        if len(seen) == 3:
            stream.cancel()
    result = stream.result()
    assert result.stats.stop_reason == "userStopped"
    assert result.stats.predicted_tokens_count < 2000


def test_a_structured_response_follows_the_schema(client):
    class Book(BaseModel):
        title: str
        year: int

    result = client.llm.model().respond(
        "Name a book.", response_format=Book, config={"maxTokens": 80, "temperature": 0}
    )
    assert isinstance(result.parsed, dict)
    Book.model_validate(result.parsed)


def test_act_calls_a_python_tool(client):
    calls = []

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        calls.append((a, b))
        return a + b

    # A worked example steers the 135M model into the tool-call format.
    chat = lms.Chat('To use a tool, reply with only a JSON object {"name": ..., "arguments": {...}}.')
    chat.add_user_message("What is 1 plus 2?")
    chat.add_assistant_response('{"name": "add", "arguments": {"a": 1, "b": 2}}')
    chat.add_user_message("What is 12 plus 30?")
    messages = []
    result = client.llm.model().act(
        chat, [add], on_message=messages.append,
        config={"maxTokens": 60, "temperature": 0}, max_prediction_rounds=2,
    )
    assert calls == [(12, 30)]
    assert result.rounds == 2
    tool_results = [m for m in messages if m.role == "tool"]
    assert tool_results and tool_results[0].content[0].content == "42"


def test_text_completion(client, base_url):
    model = client.llm.model()
    result = model.complete("The capital of France is", config={"maxTokens": 8, "temperature": 0})
    oai = openai.OpenAI(base_url=base_url, api_key="x").completions.create(
        model=model.identifier, prompt="The capital of France is", max_tokens=8, temperature=0,
    )
    assert result.content == oai.choices[0].text


def test_tokens_and_template_match_the_http_routes(client, base_url):
    model = client.llm.model()
    root = f"http://{host(base_url)}"
    tokens = httpx.post(f"{root}/tokenize", json={"content": "hello world"}).json()["tokens"]
    assert list(model.tokenize("hello world")) == tokens
    assert model.count_tokens("hello world") == len(tokens)
    assert model.get_context_length() > 0
    history = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    prompt = httpx.post(f"{root}/apply-template",
                        json={"messages": [{"role": "user", "content": "hi"}]}).json()["prompt"]
    assert model.apply_prompt_template(history) == prompt


def test_embeddings_match_the_openai_route(client, base_url):
    embedder = client.embedding.model()
    vector = np.array(embedder.embed("a quiet lake at dawn"))
    oai = openai.OpenAI(base_url=base_url, api_key="x").embeddings.create(
        model=embedder.identifier, input="a quiet lake at dawn")
    assert vector.shape == (384,)
    assert np.allclose(vector, oai.data[0].embedding, atol=1e-5)


def test_downloaded_models_list_both_kinds(client):
    kinds = {m.type for m in client.list_downloaded_models()}
    assert kinds == {"llm", "embedding"}
    assert client.llm.list_downloaded() and client.embedding.list_downloaded()


def test_errors_are_the_sdks_own(client):
    with pytest.raises(lms.LMStudioModelNotFoundError):
        client.llm.model("no-such-model")
    llm = client.llm.model().identifier
    with pytest.raises(lms.LMStudioServerError, match="chat model"):
        client.embedding.model(llm)


def test_load_and_unload_a_model(registry_url):
    with lms.Client(host(registry_url)) as c:
        progress = []
        handle = c.llm.load_new_instance(
            "smol-q8", ttl=600, config={"contextLength": 1536}, on_load_progress=progress.append
        )
        assert handle.identifier == "smol-q8"
        assert progress[-1] == 1.0
        assert handle.get_context_length() == 1536
        assert "smol-q8" in [m.identifier for m in c.llm.list_loaded()]
        assert handle.respond("Hi", config={"maxTokens": 4}).content
        c.llm.unload("smol-q8")
        assert "smol-q8" not in [m.identifier for m in c.llm.list_loaded()]


def test_budgets_hold_on_the_sdk_too(budget_url):
    with lms.Client(host(budget_url)) as c:
        model = c.llm.model()
        model.respond("One", config={"maxTokens": 2})
        model.respond("Two", config={"maxTokens": 2})
        with pytest.raises(lms.LMStudioServerError, match="(?i)rate|limit"):
            model.respond("Three", config={"maxTokens": 2})


def test_an_api_key_is_the_passkey(token_url):
    class Keyed(lms.Client):
        def _create_auth_message(self):
            return self._format_auth_message("my-script", LMS_TOKEN)

    with Keyed(host(token_url)) as c:
        assert c.llm.list_loaded()
    with lms.Client(host(token_url)) as guest:
        with pytest.raises(lms.LMStudioServerError, match="Authentication failed"):
            guest.llm.list_loaded()


def test_bad_frames_get_the_protocols_errors(base_url):
    with connect_ws(f"http://{host(base_url)}/llm") as ws:
        ws.send_json({"authVersion": 1, "clientIdentifier": "raw", "clientPasskey": "x"})
        assert ws.receive_json() == {"success": True}
        ws.send_text("{not json")
        assert ws.receive_json()["type"] == "communicationWarning"
        ws.send_json({"type": "rpcCall", "endpoint": "downloadModel", "callId": 1})
        error = ws.receive_json()
        assert error["type"] == "rpcError" and error["callId"] == 1
        assert "downloadModel" in error["error"]["title"]
        ws.send_json({"type": "rpcCall", "endpoint": "tokenize", "callId": 2, "parameter": {"x": 1}})
        error = ws.receive_json()
        assert error["type"] == "rpcError" and "parameter" in error["error"]["title"]
        ws.send_json({"type": "channelCreate", "endpoint": "predict", "channelId": 3,
                      "creationParameter": {"modelSpecifier": {"type": "query", "query": {}},
                                            "history": {"messages": []},
                                            "predictionConfigStack": {"layers": []}}})
        error = ws.receive_json()
        assert error["type"] == "channelError" and error["channelId"] == 3
        ws.send_json({"type": "keepAlive"})
        assert ws.receive_json() == {"type": "keepAliveAck"}
    with connect_ws(f"http://{host(base_url)}/files") as ws:
        ws.send_json({"authVersion": 1, "clientIdentifier": "raw", "clientPasskey": "x"})
        assert ws.receive_json() == {"success": True}
        ws.send_json({"type": "rpcCall", "endpoint": "uploadFileBase64", "callId": 1,
                      "parameter": {"name": "a.txt", "contentBase64": "!!"}})
        error = ws.receive_json()
        assert error["type"] == "rpcError" and "base64" in error["error"]["title"], error
        ws.send_json({"type": "rpcCall", "endpoint": "uploadFileBase64", "callId": 2,
                      "parameter": {"name": "a.txt", "contentBase64": "aGk="}})
        handle = ws.receive_json()
        assert handle["type"] == "rpcResult", handle
        assert handle["result"]["fileType"] == "unknown" and handle["result"]["sizeBytes"] == 2


def test_the_js_sdk_and_the_calls_lms_makes(token_url):
    script = ROOT / "tests/node/lmstudio_sdk.mjs"
    run = subprocess.run(
        ["node", str(script), f"ws://{host(token_url)}", LMS_TOKEN],
        capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/node",
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")


def test_a_client_that_leaves_mid_prediction_frees_the_model(base_url):
    root = f"http://{host(base_url)}"

    def in_flight():
        models = httpx.get(f"{root}/api/v1/models").json()["models"]
        return sum(i["in_flight"] for m in models for i in m["loaded_instances"])

    with connect_ws(f"{root}/llm") as ws:
        ws.send_json({"authVersion": 1, "clientIdentifier": "raw", "clientPasskey": "x"})
        assert ws.receive_json() == {"success": True}
        ws.send_json({"type": "channelCreate", "endpoint": "predict", "channelId": 1,
                      "creationParameter": {
                          "modelSpecifier": {"type": "query", "query": {}},
                          "history": {"messages": [{"role": "user", "content": [
                              {"type": "text", "text": "Count to ten thousand."}]}]},
                          "predictionConfigStack": {"layers": [{"layerName": "apiOverride", "config": {
                              "fields": [{"key": "llm.prediction.maxPredictedTokens",
                                          "value": {"checked": True, "value": 4000}}]}}]}}})
        while ws.receive_json()["message"]["type"] != "fragment":
            pass
        assert in_flight() == 1
    deadline = time.time() + 10
    while in_flight() and time.time() < deadline:
        time.sleep(0.05)
    assert in_flight() == 0
