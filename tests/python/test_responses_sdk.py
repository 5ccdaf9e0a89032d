"""The Responses API through the official openai SDK against the real server:
create, stream (raw events and the SDK's stream helper), a two-turn
conversation with previous_response_id, a function-call round trip,
retrieve, input items, delete, and errors as the SDK's exceptions."""
import json

import httpx
import openai
import pytest

MODEL = "smollm2-135m-instruct"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _prompt_tokens(base_url, messages):
    """What the model's chat template makes of `messages`, in tokens."""
    root = base_url.removesuffix("/v1")
    prompt = httpx.post(f"{root}/apply-template", json={"model": MODEL, "messages": messages}).json()["prompt"]
    return len(httpx.post(f"{root}/tokenize", json={"model": MODEL, "content": prompt, "add_special": True}).json()["tokens"])


def test_create_retrieve_and_input_items(client):
    r = client.responses.create(model=MODEL, input="Say hello.", instructions="Be brief.", max_output_tokens=16)
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status in ("completed", "incomplete")
    assert r.output_text
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.instructions == "Be brief."
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 16
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"

    again = client.responses.retrieve(r.id)
    assert again.output_text == r.output_text
    assert again.usage == r.usage
    items = client.responses.input_items.list(r.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]
    assert items.data[0].content == "Say hello." or items.data[0].content[0].text == "Say hello."


def test_stream_events_in_order(client):
    events = list(
        client.responses.create(model=MODEL, input="Count to three.", max_output_tokens=24, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas and final.output_text == deltas
    assert events[0].response.id == final.id and events[0].response.status == "in_progress"
    # Item ids agree between the stream and the final response.
    assert events[2].item.id == final.output[0].id
    assert client.responses.retrieve(final.id).output_text == deltas


def test_stream_helper_gives_the_final_response(client):
    with client.responses.stream(
        model=MODEL, input="Name one color. Answer with one word.", max_output_tokens=200, temperature=0
    ) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(texts)


def test_previous_response_id_continues_the_conversation(client, base_url):
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=12, temperature=0)
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="What is my name?", max_output_tokens=8, temperature=0
    )
    assert second.previous_response_id == first.id
    # The model saw exactly the first turn, its answer, then the new turn.
    seen = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.usage.input_tokens == _prompt_tokens(base_url, seen)


def test_function_call_round_trip(client, base_url):
    call_response = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
    )
    calls = [o for o in call_response.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.call_id and call.status == "completed"
    assert isinstance(json.loads(call.arguments)["city"], str)

    answer = client.responses.create(
        model=MODEL,
        previous_response_id=call_response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
        tools=TOOLS,
        max_output_tokens=24,
    )
    assert answer.status in ("completed", "incomplete")
    assert answer.output_text
    # The tool's output reached the model: the prompt holds it.
    root = base_url.removesuffix("/v1")
    seen = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "18C and sunny"},
    ]
    prompt = httpx.post(f"{root}/apply-template", json={"model": MODEL, "messages": seen, "tools": [
        {"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}
    ]}).json()["prompt"]
    assert "18C and sunny" in prompt
    assert answer.usage.input_tokens == len(
        httpx.post(f"{root}/tokenize", json={"model": MODEL, "content": prompt, "add_special": True}).json()["tokens"]
    )

    streamed = client.responses.create(
        model=MODEL,
        input="What is the weather in Rome?",
        tools=TOOLS,
        tool_choice="required",
        max_output_tokens=64,
        stream=True,
    )
    events = list(streamed)
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[0].item.type == "function_call" and added[0].item.name == "get_weather"
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"][0]
    assert done.arguments == args and json.loads(args)["city"]


def test_store_false_and_delete(client):
    unkept = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4, store=False)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)
    kept = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(kept.id)


def test_bad_requests_are_the_sdks_exceptions(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_nope")
    assert missing.value.body["param"] == "previous_response_id"
    for kwargs, param in [
        ({"input": "Hi", "background": True}, "background"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
         "input[0].content[0]"),
        ({"input": "Hi", "truncation": "sometimes"}, "truncation"),
        ({"input": "Hi", "temperature": 5}, "temperature"),
        ({}, "input"),
    ]:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=MODEL, max_output_tokens=4, **kwargs)
        if param:
            assert bad.value.body["param"] == param, (kwargs, bad.value.body)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="all-minilm-l6-v2", input="Hi")


def test_tools_it_cannot_run_are_left_out(client):
    # What agents send with every request: hosted search, tool namespaces.
    tools = TOOLS + [{"type": "web_search"}, {"type": "namespace", "name": "agents", "tools": []}]
    r = client.responses.create(model=MODEL, input="Hi", tools=tools, max_output_tokens=4)
    assert r.status in ("completed", "incomplete")
    assert [t.type for t in r.tools] == ["function", "web_search", "namespace"]
