"""Ollama's API with the official `ollama` clients (Python from PyPI, JS from
npm, both pinned) against the real server and models: list, show, ps, chat
and generate (streamed and not), a JSON-schema format, tool calls, an image
to the vision model, embeddings, pulling from a local server that speaks the
Hugging Face Hub's API, keep_alive, errors in Ollama's shape, auth, the
second port, and one question through all seven APIs ferrite speaks."""
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import anthropic
import httpx
import lmstudio as lms
import ollama
import pytest
from openai import OpenAI

from conftest import EMBED, ROOT, _free_port, _serve
from hub_server import Hub, downloading_from
from test_images import QUESTION, VLM, data_url, png

MODEL = os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
Q8 = os.environ.get("FERRITE_TEST_MODEL_Q8", str(ROOT / "models/SmolLM2-135M-Instruct.Q8_0.gguf"))
CHAT = "smollm2-135m-instruct"
VISION = "smol-vision"
EMBEDDER = "all-minilm-l6-v2"
REPO = "ferrite-test/SmolLM2-135M-Instruct-GGUF"
BOB = "sk-bob-manages-models"
ALICE = "sk-alice-chat-only"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def hub():
    hub = Hub({REPO: {"files": {"SmolLM2-135M-Instruct-Q8_0.gguf": Q8}}}).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def server(hub, tmp_path_factory):
    """The default model, a vision model and the embedding model; two keys
    (bob manages models, alice only chats); a models folder to pull into;
    the orchestrator; Ollama's API on a second port too."""
    tmp = tmp_path_factory.mktemp("ollama")
    config = tmp / "ferrite.toml"
    config.write_text(
        "[registry]\nscan = true\nmax_loaded_models = 4\n"
        f'[[registry.models]]\nid = "{VISION}"\npath = "{VLM}"\n'
        '[orchestrator]\nenabled = true\nprefix = "/orchestrator"\n'
        f'[[auth.api_keys]]\nname = "alice"\nkey = "{ALICE}"\nscopes = ["chat"]\n'
        f'[[auth.api_keys]]\nname = "bob"\nkey = "{BOB}"\n'
    )
    port = _free_port()
    for v1 in _serve({"FERRITE_CONFIG": str(config), **downloading_from(hub, tmp)},
                     args=("--ollama-port", str(port))):
        yield {"root": v1.removesuffix("/v1"), "v1": v1, "models": tmp / "models",
               "ollama": f"http://127.0.0.1:{port}"}


def client(server, key=BOB):
    return ollama.Client(host=server["root"], headers={"Authorization": f"Bearer {key}"})


def test_models_are_listed_shown_and_running(server):
    c = client(server)
    listed = {m.model: m for m in c.list().models}
    assert {f"{CHAT}:latest", f"{VISION}:latest", f"{EMBEDDER}:latest"} <= set(listed), listed
    chat = listed[f"{CHAT}:latest"]
    assert chat.details.format == "gguf" and chat.details.quantization_level == "Q4_1"
    assert chat.size == os.path.getsize(MODEL) and len(chat.digest) == 64

    shown = c.show(CHAT)
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.details.parameter_size.endswith("M")
    assert "<|im_start|>" in shown.template
    assert "vision" in c.show(f"{VISION}:latest").capabilities
    assert c.show(EMBEDDER).capabilities == ["embedding"]
    # The Python client has no call for it; tools ask it over HTTP.
    version = httpx.get(f"{server['root']}/api/version", headers={"Authorization": f"Bearer {BOB}"})
    assert version.json()["version"].count(".") == 2

    c.chat(model=CHAT, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 1})
    running = {m.model: m for m in c.ps().models}
    assert running[f"{CHAT}:latest"].context_length > 0


def test_chat_streams_and_folds_as_the_openai_api_answers(server):
    c = client(server)
    messages = [{"role": "user", "content": "Name three fruits."}]
    whole = c.chat(model=f"{CHAT}:latest", messages=messages, options=GREEDY, stream=False)
    parts = list(c.chat(model=f"{CHAT}:latest", messages=messages, options=GREEDY, stream=True))
    assert len(parts) > 2 and all(not p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts) == whole.message.content
    last = parts[-1]
    assert last.done and last.done_reason == "length" and last.model == f"{CHAT}:latest"
    assert last.eval_count == 12 and last.prompt_eval_count > 5
    assert last.total_duration >= last.eval_duration >= 0 and last.total_duration > 0

    oai = OpenAI(base_url=server["v1"], api_key=BOB).chat.completions.create(
        model=CHAT, messages=messages, max_tokens=12, temperature=0)
    assert whole.message.content == oai.choices[0].message.content
    assert whole.prompt_eval_count == oai.usage.prompt_tokens


def test_generate_is_the_chat_of_its_prompt(server):
    c = client(server)
    system, prompt = "Answer briefly.", "What is the capital of France?"
    generated = c.generate(model=CHAT, prompt=prompt, system=system, options=GREEDY)
    chatted = c.chat(model=CHAT, options=GREEDY, messages=[
        {"role": "system", "content": system}, {"role": "user", "content": prompt}])
    assert generated.response == chatted.message.content and generated.done
    streamed = "".join(p.response for p in c.generate(model=CHAT, prompt=prompt, system=system,
                                                       options=GREEDY, stream=True))
    assert streamed == generated.response
    with pytest.raises(ollama.ResponseError) as e:
        c.generate(model=CHAT, prompt=prompt, raw=True)
    assert e.value.status_code == 400 and "raw" in e.value.error


def test_a_last_assistant_message_is_continued(server):
    messages = [{"role": "user", "content": "Name the three primary colours."},
                {"role": "assistant", "content": "The three primary colours are"}]
    went_on = client(server).chat(model=CHAT, messages=messages, options=GREEDY).message.content
    oai = OpenAI(base_url=server["v1"], api_key=BOB).chat.completions.create(
        model=CHAT, messages=messages, max_tokens=12, temperature=0,
        extra_body={"continue_final_message": True})
    assert went_on and went_on == oai.choices[0].message.content


def test_a_json_schema_format_parses(server):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    reply = client(server).chat(model=CHAT, format=schema, options={"temperature": 0, "num_predict": 60},
                                messages=[{"role": "user", "content": "Describe a person."}])
    person = json.loads(reply.message.content)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    color = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
    generated = client(server).generate(model=CHAT, prompt="Name a color.", format=color,
                                        options={"temperature": 0, "num_predict": 40})
    assert isinstance(json.loads(generated.response)["color"], str)


def test_tool_calls_come_back_as_objects(server):
    # A 135M model calls no tool unprompted, and Ollama's API cannot force
    # one: ferrite's `tool_choice` extension does; the official client's
    # types parse what comes back.
    body = {"model": CHAT, "stream": False, "tools": [WEATHER], "tool_choice": "required",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "options": {"temperature": 0, "num_predict": 60}}
    auth = {"Authorization": f"Bearer {BOB}"}
    r = httpx.post(f"{server['root']}/api/chat", json=body, headers=auth, timeout=60)
    reply = ollama.ChatResponse.model_validate(r.json())
    call = reply.message.tool_calls[0].function
    assert call.name == "get_weather" and isinstance(call.arguments, dict) and "city" in call.arguments

    with httpx.stream("POST", f"{server['root']}/api/chat", json={**body, "stream": True},
                      headers=auth, timeout=60) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        parts = [ollama.ChatResponse.model_validate_json(line) for line in r.iter_lines() if line]
    calls = [p.message.tool_calls for p in parts if p.message.tool_calls]
    assert len(calls) == 1 and calls[0][0].function.arguments == call.arguments
    assert parts[-1].done

    # The client sends the call and the tool's result back as history.
    follow = client(server).chat(model=CHAT, tools=[WEATHER], options=GREEDY, messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                                                                          "arguments": call.arguments}}]},
        {"role": "tool", "content": "Sunny, 24 C", "tool_name": "get_weather"},
    ])
    assert follow.done and follow.message.role == "assistant"


def test_an_image_to_the_vision_model_answers_as_the_openai_api(server):
    image = png(5)
    reply = client(server).chat(model=VISION, options=GREEDY, messages=[
        {"role": "user", "content": QUESTION, "images": [image]}])
    oai = OpenAI(base_url=server["v1"], api_key=BOB).chat.completions.create(
        model=VISION, max_tokens=12, temperature=0, messages=[{"role": "user", "content": [
            {"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": data_url(image)}}]}])
    assert reply.message.content and reply.message.content == oai.choices[0].message.content
    other = client(server).chat(model=VISION, options=GREEDY, messages=[
        {"role": "user", "content": QUESTION, "images": [png(6)]}])
    assert other.message.content != reply.message.content
    with pytest.raises(ollama.ResponseError) as e:
        client(server).chat(model=CHAT, messages=[{"role": "user", "content": "?", "images": [image]}])
    assert e.value.status_code == 400


def test_embeddings_match_the_openai_route(server):
    c = client(server)
    embedded = c.embed(model=EMBEDDER, input=["the sea", "a mountain"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 384
    oai = OpenAI(base_url=server["v1"], api_key=BOB).embeddings.create(model=EMBEDDER, input=["the sea"])
    assert embedded.embeddings[0] == pytest.approx(oai.data[0].embedding, abs=1e-6)
    older = c.embeddings(model=EMBEDDER, prompt="the sea")
    assert list(older.embedding) == pytest.approx(embedded.embeddings[0], abs=1e-6)
    with pytest.raises(ollama.ResponseError) as e:
        c.embed(model=CHAT, input="the sea")
    assert e.value.status_code == 400


def test_pull_lists_chats_and_deletes_a_hub_model(server):
    c = client(server)
    name = f"hf.co/{REPO}:Q8_0"
    with pytest.raises(ollama.ResponseError) as e:
        client(server, ALICE).pull(name)
    assert e.value.status_code == 403
    before = {m.model for m in c.list().models}
    progress = list(c.pull(name, stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    sized = [p for p in progress if p.total]
    assert sized and sized[-1].completed == sized[-1].total == os.path.getsize(Q8)
    assert sized[-1].digest.startswith("sha256:")
    added = {m.model for m in c.list().models} - before
    assert len(added) == 1, added
    assert c.pull(name, stream=False).status == "success"  # already there

    reply = c.chat(model=name, messages=[{"role": "user", "content": "Hi"}], options=GREEDY)
    assert reply.model == name and reply.message.content
    assert c.show(name).details.quantization_level == "Q8_0"

    with pytest.raises(ollama.ResponseError) as e:
        client(server, ALICE).delete(name)
    assert e.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as e:
        c.delete(CHAT)  # not in the models folder: never deleted
    assert e.value.status_code == 400
    assert c.delete(name).status == "success"
    assert {m.model for m in c.list().models} == before
    assert not list(server["models"].rglob("*.gguf"))
    with pytest.raises(ollama.ResponseError) as e:
        c.pull("hf.co/ferrite-test/missing-GGUF")
    assert e.value.status_code == 404


def test_keep_alive_sets_the_ttl_and_zero_unloads(server):
    c = client(server)
    loaded = c.generate(model=CHAT, keep_alive="5m")
    assert loaded.done_reason == "load"
    running = {m.model: m for m in c.ps().models}
    assert f"{CHAT}:latest" in running
    left = running[f"{CHAT}:latest"].expires_at - datetime.now(timezone.utc)
    assert timedelta(minutes=4) < left <= timedelta(minutes=5, seconds=5)
    # Negative: loaded until evicted, shown as far away.
    c.generate(model=CHAT, keep_alive=-1)
    left = {m.model: m for m in c.ps().models}[f"{CHAT}:latest"].expires_at - datetime.now(timezone.utc)
    assert left > timedelta(days=365)
    with pytest.raises(ollama.ResponseError) as e:
        client(server, ALICE).generate(model=CHAT, keep_alive=0)
    assert e.value.status_code == 403
    assert c.generate(model=CHAT, keep_alive=0).done_reason == "unload"
    assert f"{CHAT}:latest" not in {m.model for m in c.ps().models}
    # Answered first, then unloaded.
    reply = c.chat(model=CHAT, keep_alive=0, options=GREEDY, messages=[{"role": "user", "content": "Hi"}])
    assert reply.message.content
    for _ in range(50):
        if f"{CHAT}:latest" not in {m.model for m in c.ps().models}:
            break
        __import__("time").sleep(0.1)
    else:
        pytest.fail("keep_alive 0 left the model loaded")
    # A client that leaves mid-answer: the model still goes.
    parts = c.chat(model=CHAT, keep_alive=0, stream=True, options={"num_predict": 400},
                   messages=[{"role": "user", "content": "Tell me a long story."}])
    assert next(parts).message.content is not None
    parts.close()
    for _ in range(50):
        if f"{CHAT}:latest" not in {m.model for m in c.ps().models}:
            break
        __import__("time").sleep(0.1)
    else:
        pytest.fail("keep_alive 0 left the model loaded after the client left")
    # Embedding models too: embedded, then unloaded.
    assert c.embed(model=EMBEDDER, input="Hi", keep_alive=0).embeddings
    for _ in range(50):
        if f"{EMBEDDER}:latest" not in {m.model for m in c.ps().models}:
            break
        __import__("time").sleep(0.1)
    else:
        pytest.fail("keep_alive 0 left the embedding model loaded")


def test_errors_are_in_ollamas_shape(server):
    c = client(server)
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert e.value.status_code == 404 and "no-such-model" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=server["root"]).list()
    assert e.value.status_code == 401
    r = httpx.post(f"{server['root']}/api/chat", content=b"{not json", headers={"Authorization": f"Bearer {BOB}"})
    assert r.status_code == 400 and set(r.json()) == {"error"}
    r = httpx.post(f"{server['root']}/api/generate", headers={"Authorization": f"Bearer {BOB}"},
                   json={"model": CHAT, "prompt": "Hi", "options": {"num_predict": "many"}})
    assert r.status_code == 400 and "num_predict" in r.json()["error"]
    r = httpx.post(f"{server['root']}/api/chat", headers={"Authorization": f"Bearer {BOB}"},
                   json={"model": CHAT, "keep_alive": "soon", "messages": []})
    assert r.status_code == 400 and "soon" in r.json()["error"]


def test_the_second_port_serves_the_same_api(server):
    c = ollama.Client(host=server["ollama"], headers={"Authorization": f"Bearer {ALICE}"})
    assert f"{CHAT}:latest" in {m.model for m in c.list().models}
    assert c.generate(model=CHAT, prompt="Hi", options=GREEDY).response


def test_the_js_client(server, tmp_path):
    image = tmp_path / "five.png"
    image.write_bytes(png(5))
    pull = f"hf.co/{REPO}:Q8_0"
    run = subprocess.run(
        ["node", str(ROOT / "tests/node/ollama.mjs"), server["root"], BOB, CHAT, EMBEDDER,
         VISION, str(image), pull],
        capture_output=True, text=True, timeout=300, cwd=ROOT / "tests/node",
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert f"{CHAT}:latest" in seen["models"] and f"{CHAT}:latest" in seen["running"]
    assert "completion" in seen["capabilities"]
    assert seen["streamed"] == seen["whole"] and seen["whole"]
    assert seen["generated"] == seen["whole"]
    assert seen["done_reason"] == "length" and seen["eval_count"] == 12
    person = json.loads(seen["formatted"])
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    call = seen["tool_calls"][0]["function"]
    assert call["name"] == "get_weather" and "city" in call["arguments"]
    oai = OpenAI(base_url=server["v1"], api_key=BOB).chat.completions.create(
        model=VISION, max_tokens=12, temperature=0, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": data_url(png(5))}}]}])
    assert seen["image_answer"] == oai.choices[0].message.content
    assert seen["dimensions"] == 384
    statuses = [p["status"] for p in seen["pulled"]]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    progress = [p for p in seen["pulled"] if p["status"].startswith("pulling sha256:")]
    assert progress and progress[-1]["completed"] == progress[-1]["total"] > 0
    assert progress[-1]["total"] == os.path.getsize(Q8)
    assert len(set(seen["after_pull"]) - set(seen["models"])) == 1
    assert seen["deleted"] == "success"
    assert not list(server["models"].rglob("*.gguf"))
    assert seen["unknown"]["status"] == 404 and "no-such-model" in seen["unknown"]["error"]
    assert seen["unauthorized"]["status"] == 401
    assert seen["unloaded"] == "unload" and f"{CHAT}:latest" not in seen["after_unload"]


def test_one_question_gets_one_answer_through_all_seven_apis(server):
    """OpenAI Chat Completions, Responses, Anthropic, LM Studio's REST API and
    its SDK, Ollama, and the orchestrator's raw /generate fed the same
    rendered prompt: greedy, the same tokens in, the same answer out."""
    system, question = "You are a helpful assistant.", "Name a color."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    auth = {"Authorization": f"Bearer {BOB}"}
    oai = OpenAI(base_url=server["v1"], api_key=BOB)
    expected = oai.chat.completions.create(model=CHAT, messages=messages, max_tokens=12,
                                           temperature=0).choices[0].message.content
    assert expected
    answers = {}
    answers["responses"] = oai.responses.create(model=CHAT, instructions=system, input=question,
                                                max_output_tokens=12, temperature=0).output_text
    answers["anthropic"] = anthropic.Anthropic(base_url=server["root"], api_key=BOB).messages.create(
        model=CHAT, system=system, max_tokens=12, extra_body={"temperature": 0},
        messages=[{"role": "user", "content": question}]).content[0].text
    v0 = httpx.post(f"{server['root']}/api/v0/chat/completions", headers=auth, timeout=60,
                    json={"model": CHAT, "messages": messages, "max_tokens": 12, "temperature": 0})
    answers["lmstudio rest"] = v0.json()["choices"][0]["message"]["content"]
    class Keyed(lms.Client):
        def _create_auth_message(self):
            return self._format_auth_message("ollama-test", BOB)

    with Keyed(server["root"].removeprefix("http://")) as sdk:
        chat = lms.Chat(system)
        chat.add_user_message(question)
        answers["lmstudio sdk"] = sdk.llm.model(CHAT).respond(
            chat, config={"maxTokens": 12, "temperature": 0}).content
    answers["ollama"] = client(server).chat(model=CHAT, messages=messages, options=GREEDY).message.content
    prompt = httpx.post(f"{server['root']}/apply-template", headers=auth,
                        json={"model": CHAT, "messages": messages}).json()["prompt"]
    answers["orchestrator"] = httpx.post(f"{server['root']}/orchestrator/generate", headers=auth, timeout=60,
                                         json={"prompt": prompt, "max_tokens": 12, "temperature": 0}).json()["text"]
    assert answers == {k: expected for k in answers}
