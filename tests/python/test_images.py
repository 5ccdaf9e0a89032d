"""One image through every API ferrite speaks, with the official clients:
the openai SDK (Chat Completions and Responses), the anthropic SDK and LM
Studio's Python SDK (its `files` namespace). Text comes before the image
everywhere, as LM Studio's SDK orders a message's parts. The model is the default one
with a random-weight projector beside it (scripts/make-mmproj.py): what it
says about a picture means nothing, but at temperature 0 the same picture
and question must give the same answer on every road."""
import base64
import functools
import http.server
import os
import struct
import threading
import zlib

import anthropic
import lmstudio as lms
import pytest
from openai import BadRequestError, OpenAI

from conftest import ROOT, _serve

VLM = os.environ.get("FERRITE_TEST_VLM", str(ROOT / "models/vlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTION = "What is in this picture?"


def png(seed: int, side: int = 40) -> bytes:
    """A small RGB PNG of noise from `seed`, without any imaging library."""
    state = seed * 2654435761 % 2**32 | 1
    rows = []
    for _ in range(side):
        row = bytearray([0])  # filter: none
        for _ in range(side):
            state ^= (state << 13) % 2**32
            state ^= state >> 17
            state ^= (state << 5) % 2**32
            row += state.to_bytes(4, "little")[:3]
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def vlm_url():
    # Prefix reuse off: every request computes its prompt the same way, so
    # answers compare exactly on llama.cpp.
    yield from _serve({"FERRITE_MODEL__RUNTIME": "llama.cpp"}, model=VLM, args=("--prefix-cache", "0"))


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def chat_answer(url, image):
    client = OpenAI(base_url=url, api_key="none")
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": data_url(image)}},
        ]}],
        max_tokens=12,
        temperature=0,
    )
    return reply.choices[0].message.content, reply.usage.prompt_tokens


def test_every_api_gives_the_same_answer_for_the_same_image(vlm_url):
    image = png(5)
    expected, prompt_tokens = chat_answer(vlm_url, image)
    assert expected

    responses = OpenAI(base_url=vlm_url, api_key="none").responses.create(
        model="smollm2-135m-instruct",
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": QUESTION},
            {"type": "input_image", "image_url": data_url(image)},
        ]}],
        max_output_tokens=12,
        temperature=0,
    )
    assert responses.output_text == expected
    assert responses.usage.input_tokens == prompt_tokens

    message = anthropic.Anthropic(base_url=vlm_url.removesuffix("/v1"), api_key="none").messages.create(
        model="smollm2-135m-instruct",
        max_tokens=12,
        # This SDK version has no `temperature` argument: sent as a body field.
        extra_body={"temperature": 0},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(image).decode()}},
        ]}],
    )
    assert message.content[0].text == expected
    assert message.usage.input_tokens == prompt_tokens

    host = vlm_url.removeprefix("http://").removesuffix("/v1")
    with lms.Client(host) as client:
        handle = client.files.prepare_image(image, name="noise.png")
        chat = lms.Chat()
        chat.add_user_message(QUESTION, images=[handle])
        result = client.llm.model("smollm2-135m-instruct").respond(
            chat, config={"maxTokens": 12, "temperature": 0})
    assert result.content == expected


def test_a_different_image_gives_a_different_answer(vlm_url):
    assert chat_answer(vlm_url, png(5))[0] != chat_answer(vlm_url, png(6))[0]


def test_bad_images_are_400s_on_every_api(vlm_url):
    client = OpenAI(base_url=vlm_url, api_key="none")
    with pytest.raises(BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
            ]}],
        )
    assert e.value.body["param"] == "messages[0].content[0].image_url"
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic.Anthropic(base_url=vlm_url.removesuffix("/v1"), api_key="none").messages.create(
            model="smollm2-135m-instruct",
            max_tokens=4,
            messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}},
            ]}],
        )
    assert "base64" in str(e.value)
    with pytest.raises(BadRequestError) as e:
        client.responses.create(
            model="smollm2-135m-instruct",
            input=[{"role": "user", "content": [
                {"type": "input_image", "image_url": "https://example.com/cat.png"},
            ]}],
        )
    assert "fetch" in str(e.value)


def test_image_urls_are_fetched_only_where_allowed(vlm_url, tmp_path):
    (tmp_path / "noise.png").write_bytes(png(9))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/noise.png"

    def ask(base, image_url):
        return OpenAI(base_url=base, api_key="none").chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": image_url}},
            ]}],
            max_tokens=12,
            temperature=0,
        ).choices[0].message.content

    # Off by default: the server never reaches out for a client.
    with pytest.raises(BadRequestError) as e:
        ask(vlm_url, url)
    assert "images.fetch" in str(e.value)
    served = _serve({"FERRITE_MODEL__RUNTIME": "llama.cpp", "FERRITE_IMAGES__FETCH": "true"},
                    model=VLM, args=("--prefix-cache", "0"))
    fetching = next(served)
    try:
        assert ask(fetching, url) == ask(fetching, data_url(png(9)))
        with pytest.raises(BadRequestError) as e:
            ask(fetching, url.replace("noise", "missing"))
        assert "could not be fetched" in str(e.value)
    finally:
        served.close()
        httpd.shutdown()
