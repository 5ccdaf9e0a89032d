"""Embeddings through the official openai SDK against the real server and the
real all-MiniLM-L6-v2, checked against the same model's forward pass written
out in numpy from its safetensors (sentence-transformers' recipe: BERT, mean
pooling over the tokens, unit length)."""
import base64
import json
import pathlib

import httpx
import numpy as np
import openai
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conftest import EMBED_HF

MODEL = "all-minilm-l6-v2"


def _layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1 + np.vectorize(lambda v: erf(v / sqrt(2)))(x))


class Reference:
    """all-MiniLM-L6-v2 in numpy, from the files the server's GGUF was made of."""

    def __init__(self, folder):
        folder = pathlib.Path(folder)
        self.w = load_file(str(folder / "model.safetensors"))
        self.config = json.loads((folder / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The file pads to 128 tokens for training; one text is not padded.
        self.tokenizer.no_padding()

    def ids(self, text):
        return self.tokenizer.encode(text).ids

    def embed(self, text):
        w, c = self.w, self.config
        ids = self.ids(text)
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads = c["num_attention_heads"]
        d = c["hidden_size"] // heads
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            lin = lambda h, name: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            q, k, v = (
                lin(x, f"attention.self.{n}").reshape(len(ids), heads, d).transpose(1, 0, 2)
                for n in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            att = (scores / scores.sum(-1, keepdims=True)) @ v
            att = att.transpose(1, 0, 2).reshape(len(ids), -1)
            x = _layer_norm(
                x + lin(att, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)


@pytest.fixture(scope="module")
def reference():
    return Reference(EMBED_HF)


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


TEXTS = [
    "A cat sits on the mat.",
    "A kitten is resting on the rug.",
    "The central bank raised interest rates again.",
]


def test_sdk_embeddings_match_the_model_computed_by_hand(client, reference):
    # The SDK asks for base64 and decodes it; the vectors must be the model's.
    answer = client.embeddings.create(model=MODEL, input=TEXTS)
    assert answer.object == "list"
    assert answer.model == MODEL
    assert [d.index for d in answer.data] == [0, 1, 2]
    got = np.array([d.embedding for d in answer.data])
    assert got.shape == (3, 384)
    want = np.array([reference.embed(t) for t in TEXTS])
    # F16 weights against F32 numpy: the same direction to three nines.
    for g, r in zip(got, want):
        assert float(g @ r) > 0.999
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)
    assert answer.usage.prompt_tokens == sum(len(reference.ids(t)) for t in TEXTS)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens
    # Meaning, not words: the paraphrase is nearer than the unrelated text.
    assert got[0] @ got[1] > got[0] @ got[2] + 0.3


def test_float_and_base64_and_token_inputs_agree(base_url, reference):
    root = base_url.removesuffix("/v1")
    text = TEXTS[0]
    floats = httpx.post(f"{base_url}/embeddings", json={"model": MODEL, "input": text}).json()
    raw = httpx.post(
        f"{root}/api/v0/embeddings",
        json={"model": MODEL, "input": [text], "encoding_format": "base64"},
    ).json()
    ids = httpx.post(
        f"{base_url}/embeddings", json={"model": MODEL, "input": [reference.ids(text)]}
    ).json()
    a = np.array(floats["data"][0]["embedding"])
    b = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    c = np.array(ids["data"][0]["embedding"])
    assert np.allclose(a, b, atol=1e-6)
    assert np.allclose(a, c, atol=1e-6)


def test_one_input_alone_or_in_a_batch_is_the_same(client):
    alone = client.embeddings.create(model=MODEL, input=TEXTS[2]).data[0].embedding
    batch = [f"sentence number {i}" for i in range(63)] + [TEXTS[2]]
    many = client.embeddings.create(model=MODEL, input=batch).data
    assert len(many) == 64
    assert np.allclose(alone, many[63].embedding, atol=1e-4)


def test_listed_as_embeddings_as_lm_studio_does(base_url):
    root = base_url.removesuffix("/v1")
    models = httpx.get(f"{root}/api/v0/models").json()["data"]
    kinds = {m["id"]: m["type"] for m in models}
    assert kinds[MODEL] == "embeddings"
    assert kinds["smollm2-135m-instruct"] == "llm"


def test_wrong_kind_of_model_and_bad_input_are_400s(client, base_url):
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "embedding model" in chat.value.message
    with pytest.raises(openai.BadRequestError) as emb:
        client.embeddings.create(model="smollm2-135m-instruct", input="hi")
    assert "chat model" in emb.value.message
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="hi")
    for body, param in [
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": ["ok", ""]}, "input"),
        ({"model": MODEL, "input": "word " * 600}, "input"),
        ({"model": MODEL, "input": [[999999]]}, "tokens"),
        ({"model": MODEL, "input": "hi", "dimensions": 128}, "dimensions"),
        ({"model": MODEL, "input": 42}, None),
    ]:
        r = httpx.post(f"{base_url}/embeddings", json=body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["message"]
        if param:
            assert error["param"] == param, (body, error)
