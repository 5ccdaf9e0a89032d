"""The official Anthropic Python SDK against a real ferrite server
(`POST /v1/messages`, as Claude Code speaks it with `ANTHROPIC_BASE_URL`)."""
import anthropic
import pytest
from anthropic import Anthropic
from openai import OpenAI

MODEL = "smollm2-135m-instruct"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client(base_url):
    # The SDK adds /v1/messages to the server's root.
    return Anthropic(base_url=base_url.removesuffix("/v1"), api_key="lm-studio", max_retries=0)


def test_messages_create(client):
    r = client.messages.create(
        model=MODEL,
        max_tokens=16,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hi."}],
    )
    assert r.type == "message" and r.role == "assistant"
    assert r.id.startswith("msg_")
    assert r.model == MODEL
    assert r.content[0].type == "text" and r.content[0].text
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert 0 < r.usage.output_tokens <= 16
    assert r.usage.input_tokens > 5


def test_messages_stream(client):
    with client.messages.stream(
        model=MODEL,
        max_tokens=24,
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 0 < final.usage.output_tokens <= 24
    assert final.usage.input_tokens > 5


def test_a_prefilled_answer_is_continued_as_the_openai_api_continues_it(client, base_url):
    prefix = "The three primary colours are"
    messages = [{"role": "user", "content": "Name the three primary colours."},
                {"role": "assistant", "content": prefix}]
    r = client.messages.create(model=MODEL, max_tokens=12, messages=messages, extra_body={"temperature": 0})
    added = r.content[0].text
    assert added and not added.startswith(prefix)
    oai = OpenAI(base_url=base_url, api_key="lm-studio").chat.completions.create(
        model=MODEL, messages=messages, max_tokens=12, temperature=0,
        extra_body={"continue_final_message": True})
    assert added == oai.choices[0].message.content
    # Without it, the same chat is answered with a turn of its own.
    fresh = OpenAI(base_url=base_url, api_key="lm-studio").chat.completions.create(
        model=MODEL, messages=messages, max_tokens=12, temperature=0)
    assert fresh.choices[0].message.content != added


def test_a_tool_use_round_trip(client):
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    r = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[ask],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert r.stop_reason == "tool_use"
    call = r.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input, dict) and isinstance(call.input.get("city"), str)
    # The tool's result goes back; the model answers from it.
    r2 = client.messages.create(
        model=MODEL,
        max_tokens=16,
        messages=[
            ask,
            {"role": "assistant", "content": r.content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 20 degrees."},
            ]},
        ],
        tools=[WEATHER],
    )
    assert r2.type == "message" and r2.content
    assert r2.usage.input_tokens > r.usage.input_tokens


def test_count_tokens_matches_what_a_message_uses(client):
    ask = dict(
        model=MODEL,
        system="Be brief.",
        messages=[{"role": "user", "content": "Name a colour."}],
    )
    counted = client.messages.count_tokens(**ask)
    used = client.messages.create(max_tokens=1, **ask)
    assert counted.input_tokens == used.usage.input_tokens


def test_thinking_comes_back_as_a_thinking_block(client):
    r = client.messages.create(
        model=MODEL,
        max_tokens=48,
        thinking={"type": "enabled", "budget_tokens": 12},
        messages=[{"role": "user", "content": "Is 7 prime?"}],
    )
    assert [b.type for b in r.content][:1] == ["thinking"]
    assert r.usage.output_tokens <= 48


def test_errors_raise_the_right_exception_classes(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=4,
                               messages=[{"role": "user", "content": "Hi"}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=4, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_x_api_key_authenticates(auth_url):
    root = auth_url.removesuffix("/v1")
    ok = Anthropic(base_url=root, api_key="sk-ferrite-test", max_retries=0)
    r = ok.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert r.type == "message"
    bad = Anthropic(base_url=root, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert e.value.body["error"]["type"] == "authentication_error"
