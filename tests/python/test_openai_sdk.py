"""The official OpenAI Python SDK against a real ferrite server."""
import openai
import pytest
from openai import OpenAI


# Confident at every token, so greedy text is the same under any batching.
COUNTING = "Count from 1 to 10, separated by commas."


@pytest.fixture(scope="module")
def client(base_url):
    # LM Studio users pass any key; ferrite without auth configured accepts it.
    return OpenAI(base_url=base_url, api_key="lm-studio", max_retries=0)


def test_chat_completion(client):
    r = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
        max_tokens=8,
        temperature=0,
    )
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_chat(client):
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": COUNTING}],
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    # Generated again, not replayed from the response cache.
    plain = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": COUNTING}],
        max_tokens=10,
        temperature=0,
        extra_body={"cache": False},
    )
    assert plain.choices[0].message.content == text
    assert plain.id != chunks[0].id


def test_models_list(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    # The chat model and the embedding model, as `make serve` offers them.
    assert ids == ["smollm2-135m-instruct", "all-minilm-l6-v2"]
    assert models.data[1].meta["type"] == "embeddings"
    assert client.models.retrieve("smollm2-135m-instruct").id == "smollm2-135m-instruct"


def test_structured_output_with_the_sdk(client):
    r = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Give a city and its country."}],
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "place",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                    "required": ["city", "country"],
                    "additionalProperties": False,
                },
            },
        },
    )
    import json

    data = json.loads(r.choices[0].message.content)
    assert set(data) == {"city", "country"}


def test_text_completion(client):
    r = client.completions.create(
        model="smollm2-135m-instruct", prompt="The capital of France is", max_tokens=4, temperature=0
    )
    assert r.object == "text_completion"
    assert r.choices[0].text.startswith(" ")


def test_errors_raise_the_right_exception_classes(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}], temperature=5
        )
    assert e.value.param == "temperature"

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "word " * 9000}],
        )
    assert e.value.code == "context_length_exceeded"


def test_cache_headers_and_replay_through_the_sdk(client):
    ask = dict(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Name a fruit."}],
        max_tokens=6,
        temperature=0,
    )
    first = client.chat.completions.with_raw_response.create(**ask)
    again = client.chat.completions.with_raw_response.create(**ask)
    assert first.headers["x-ferrite-cache"] == "miss"
    assert again.headers["x-ferrite-cache"] == "hit"
    assert again.parse().id != first.parse().id  # a response of its own
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content


def test_rate_limits_raise_rate_limit_error_with_openai_headers(budget_url):
    client = OpenAI(base_url=budget_url, api_key="lm-studio", max_retries=0)
    ask = dict(messages=[{"role": "user", "content": "Hi"}], max_tokens=1, model="smollm2-135m-instruct")
    ok = client.chat.completions.with_raw_response.create(**ask)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    client.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(**ask)
    assert e.value.status_code == 429
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_thinking_budget_and_rounds_through_the_sdk(client):
    question = [{"role": "user", "content": "What is 12 + 7? Think it through."}]
    no_eos = {"0": -100, "2": -100}
    r = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=question,
        max_tokens=30,
        temperature=0,
        logit_bias=no_eos,
        extra_body={"thinking": {"max_tokens": 6}},
    )
    message = r.choices[0].message
    assert r.usage.completion_tokens_details.reasoning_tokens == 6
    assert message.reasoning_content and message.content
    # Streaming: the SDK hands reasoning deltas through as extra fields.
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=question,
        max_tokens=30,
        temperature=0,
        logit_bias=no_eos,
        stream=True,
        extra_body={"thinking": {"max_tokens": 6}},
    )
    reasoning, content = "", ""
    for chunk in stream:
        for c in chunk.choices:
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
            content += c.delta.content or ""
    assert (reasoning, content) == (message.reasoning_content, message.content)
    # OpenAI's own knob maps to a configured budget.
    effort = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=question, max_tokens=40, temperature=0,
        reasoning_effort="minimal",
    )
    assert effort.usage.completion_tokens_details.reasoning_tokens <= 64
    # Two rounds: SSE progress comments do not disturb the SDK's parser.
    rounds = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=question, max_tokens=30, temperature=0,
        stream=True, extra_body={"thinking": {"max_tokens": 4, "rounds": 2}},
    )
    assert "".join(c.choices[0].delta.content or "" for c in rounds if c.choices)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="smollm2-135m-instruct", messages=question,
            extra_body={"thinking": {"min_tokens": 5, "max_tokens": 1}},
        )
    assert err.value.body["param"] == "thinking.min_tokens"


def test_models_load_just_in_time_and_route_through_the_sdk(registry_url):
    client = OpenAI(base_url=registry_url, api_key="lm-studio")
    ids = [m.id for m in client.models.list().data]
    assert ids == ["smollm2-135m-instruct", "all-minilm-l6-v2", "smol-q8", "auto"]

    # Not loaded yet: the stream opens with SSE comment pings, which the SDK skips.
    stream = client.chat.completions.create(
        model="smol-q8",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=5,
        stream=True,
    )
    chunks = list(stream)
    assert all(c.model == "smol-q8" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Write Python that prints 1."}],
        max_tokens=5,
    )
    assert raw.headers["x-ferrite-routed-model"] == "smol-q8"
    assert raw.headers["x-ferrite-route"] == "code"
    completion = raw.parse()
    assert completion.model == "smol-q8"
    assert completion.model_extra["ferrite"]["route"]["reason"] == "keywords `python`"

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert e.value.code == "model_not_found"
