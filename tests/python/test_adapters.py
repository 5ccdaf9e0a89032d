"""LoRA adapters through the official openai client: GGUF adapters switched
per request on llama.cpp, PEFT adapters merged as a model loads on mistral.rs.

The adapters are made for the test by scripts/make-lora.py (rank 8, fixed
seeded weights, F16) for the default model, and served with it from a
registry entry. Prefix reuse is off so that answers compare token for token
(llama.cpp's numbers differ slightly when a prompt's KV is reused).
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anthropic
import gguf
import numpy as np
import openai
import pytest
from safetensors.numpy import load_file, save_file

from conftest import ROOT, _serve

MODEL = os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTION = [{"role": "user", "content": "Name three colors."}]


def make_lora(out, *flags):
    """A test adapter for MODEL, written by scripts/make-lora.py."""
    subprocess.run([sys.executable, str(ROOT / "scripts/make-lora.py"), MODEL, str(out), *flags], check=True)


# The adapter most tests compare against, as GGUF and (converted) as PEFT.
STYLE = ("--seed", "1", "--targets", "attn_q,attn_k,attn_v,ffn_down")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    make_lora(d / "style.gguf", *STYLE)
    # The same adapter as PEFT saves it, converted back by ferrite's script.
    as_peft(d / "style.gguf", d / "peft")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/peft-to-gguf-lora.py"), MODEL, str(d / "peft"), str(d / "peft.gguf")],
        check=True,
    )
    make_lora(d / "other.gguf", "--seed", "2", "--targets", "attn_output,ffn_up")
    make_lora(d / "f32.gguf", "--type", "f32")
    config = d / "ferrite.toml"
    config.write_text(
        "[model]\nprefix_cache = 0\n[cache]\nenabled = false\n"
        "[registry]\nscan = false\nmax_loaded_models = 3\n"
        f'[[registry.models]]\nid = "smol-lora"\npath = "{MODEL}"\n'
        f'adapters = [{{ id = "style", path = "{d / "style.gguf"}" }},'
        f' {{ id = "other", path = "{d / "other.gguf"}", scale = 0.5 }},'
        f' {{ id = "peft", path = "{d / "peft.gguf"}" }}]\n'
        f'[[registry.models]]\nid = "smol-f32"\npath = "{MODEL}"\n'
        f'adapters = [{{ id = "wide", path = "{d / "f32.gguf"}" }}]\n'
    )
    for url in _serve({"FERRITE_CONFIG": str(config)}):
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


HF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "ffn_down": "mlp.down_proj"}


def as_peft(adapter, out):
    """A GGUF LoRA written as PEFT's files: HF tensor names, Q and K rows in
    HF's rotary order (llama.cpp's permutation undone)."""
    r = gguf.GGUFReader(adapter)
    base = gguf.GGUFReader(MODEL)
    heads = {"attn_q": base.fields["llama.attention.head_count"].contents(),
             "attn_k": base.fields["llama.attention.head_count_kv"].contents()}
    tensors = {}
    for t in r.tensors:
        _, layer, kind, _, ab = t.name.split(".")
        w = np.array(t.data, dtype=np.float32)
        if ab == "lora_b" and kind in heads:
            n = heads[kind]
            w = w.reshape(n, w.shape[0] // n // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)
        ab = "lora_A" if ab == "lora_a" else "lora_B"
        tensors[f"base_model.model.model.layers.{layer}.{HF_NAMES[kind]}.{ab}.weight"] = np.ascontiguousarray(w)
    out.mkdir()
    save_file(tensors, str(out / "adapter_model.safetensors"))
    alpha = r.fields["adapter.lora.alpha"].contents()
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 8, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none",
        "target_modules": ["q_proj", "k_proj", "v_proj", "down_proj"], "task_type": "CAUSAL_LM"}))


def base_url(client):
    return str(client.base_url).removesuffix("/").removesuffix("/v1")


def v1_models(client):
    with urllib.request.urlopen(f"{base_url(client)}/api/v1/models") as r:
        return json.load(r)["models"]


def answer(client, model="smol-lora", adapters=None, max_tokens=24):
    extra = {"adapters": adapters} if adapters is not None else None
    r = client.chat.completions.create(
        model=model, messages=QUESTION, temperature=0, max_tokens=max_tokens, extra_body=extra
    )
    return r.choices[0].message.content


def shared(a, b):
    """Characters two answers share from the start."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_adapters_are_listed_as_models_of_their_own(client):
    models = {m.id: m for m in client.models.list().data}
    assert "smol-lora" in models
    for adapter in ("smol-lora@style", "smol-lora@other", "smol-lora@peft"):
        assert models[adapter].model_extra["parent"] == "smol-lora"
    one = client.models.retrieve("smol-lora@style")
    assert one.id == "smol-lora@style" and one.model_extra["parent"] == "smol-lora"
    # LM Studio's listing carries them as an extension, and `ferrite ls` shows them.
    (smol,) = [m for m in v1_models(client) if m["key"] == "smol-lora"]
    assert [(a["key"], a["scale"], a["mode"]) for a in smol["adapters"]] == [
        ("smol-lora@style", 1.0, "per_request"), ("smol-lora@other", 0.5, "per_request"),
        ("smol-lora@peft", 1.0, "per_request")]
    binary = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
    ls = subprocess.run([binary, "ls", "--url", base_url(client)], capture_output=True, text=True, check=True)
    assert "  smol-lora@other" in ls.stdout and "scale 0.5" in ls.stdout, ls.stdout


def test_an_adapter_changes_greedy_output_and_scale_zero_is_the_base(client):
    base = answer(client)
    styled = answer(client, "smol-lora@style")
    assert styled != base
    # The field names it as well, and the name reads back on the response.
    r = client.chat.completions.create(
        model="smol-lora", messages=QUESTION, temperature=0, max_tokens=24,
        extra_body={"adapters": ["style"]},
    )
    assert r.choices[0].message.content == styled
    assert r.model == "smol-lora@style"
    assert answer(client, adapters=[{"id": "style", "scale": 0}]) == base
    # The field's scale wins over the name's.
    assert answer(client, "smol-lora@style", adapters=[{"id": "style", "scale": 0}]) == base
    # Text completions take adapters too.
    completions = [
        client.completions.create(
            model=m, prompt="The capital of France is", temperature=0, max_tokens=12
        ).choices[0].text
        for m in ("smol-lora", "smol-lora@other")
    ]
    assert completions[0] != completions[1]


def test_several_adapters_at_once_with_scales(client):
    style = answer(client, "smol-lora@style")
    other = answer(client, "smol-lora@other")
    both = answer(client, "smol-lora@style,other")
    assert both not in (style, other)
    # The same set named by the field, with the entry's default scales.
    assert answer(client, adapters=["style", {"id": "other", "scale": 0.5}]) == both
    # Another scale is another model, and the name can give it too.
    full = answer(client, adapters=[{"id": "other", "scale": 1.0}])
    assert full != other
    assert answer(client, "smol-lora@other*1") == full


def test_requests_with_different_adapters_in_one_batch_each_get_their_own(client):
    models = ["smol-lora", "smol-lora@style", "smol-lora@other", "smol-lora@style,other"]
    alone = {m: answer(client, m, max_tokens=32) for m in models}
    got, spans = {}, {}

    def run(m):
        text, first = "", None
        stream = client.chat.completions.create(
            model=m, messages=QUESTION, temperature=0, max_tokens=32, stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic()
                text += chunk.choices[0].delta.content
        got[m], spans[m] = text, (first, time.monotonic())

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # llama.cpp is not batch-invariant (where a sequence's KV sits changes
    # the last bits of its logits, which can flip a near tie later on), so
    # as in the Rust suite each answer must start as its own alone does,
    # and be nearer it than any other model's.
    for m in models:
        own = shared(got[m], alone[m])
        assert own >= min(8, len(alone[m])), (m, got[m], alone[m])
        assert all(own > shared(got[m], alone[o]) for o in models if o != m), (m, got, alone)
    # They ran at once: every stream began before any had ended.
    assert max(s[0] for s in spans.values()) < min(s[1] for s in spans.values())


def test_unknown_or_bad_adapters_are_the_requests_fault(client):
    with pytest.raises(openai.NotFoundError) as e:
        answer(client, "smol-lora@nope")
    assert e.value.body["param"] == "model"
    for adapters, words in [
        (["nope"], "it has: style, other, peft"),
        ([{"id": "style", "scale": 100}], "between -10 and 10"),
        (["style", "style"], "named twice"),
        ([7], "an adapter id"),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            answer(client, adapters=adapters)
        assert words in e.value.body["message"], e.value.body
    # The model without adapters says so before loading anything.
    with pytest.raises(openai.BadRequestError) as e:
        answer(client, "smollm2-135m-instruct", adapters=["style"])
    assert "no LoRA adapters" in e.value.body["message"]
    # And the server goes on answering.
    assert answer(client, "smol-lora@style")


def test_an_adapter_llama_cpp_cannot_run_fails_the_load_not_the_server(client):
    # F32 LoRA tensors crash llama.cpp's CPU kernels: refused when loading.
    with pytest.raises(openai.InternalServerError) as e:
        answer(client, "smol-f32@wide")
    assert e.value.body["code"] == "model_load_failed"
    assert "F32" in e.value.body["message"]
    assert answer(client, "smol-lora@style")


def test_the_lora_flag_serves_adapters_with_the_startup_model(tmp_path):
    # As llama-server's --lora: the id is the file's name.
    make_lora(tmp_path / "terse.gguf", "--seed", "3")
    for url in _serve({"FERRITE_CACHE__ENABLED": "false"}, ["--lora", str(tmp_path / "terse.gguf")]):
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        assert c.models.retrieve("smollm2-135m-instruct@terse").model_extra["parent"] == "smollm2-135m-instruct"
        assert answer(c, "smollm2-135m-instruct@terse") != answer(c, "smollm2-135m-instruct")


HF = os.environ.get("FERRITE_TEST_SAFETENSORS", str(ROOT / "models/smollm2-135m-hf"))


def merged_copy(peft, out):
    """The HF model with the PEFT adapter added to its weights by numpy:
    what mistral.rs should compute as it loads."""
    out.mkdir()
    for f in os.listdir(HF):
        if not f.endswith(".safetensors"):
            (out / f).write_bytes((Path(HF) / f).read_bytes())
    weights = load_file(str(Path(HF) / "model.safetensors"))
    lora = load_file(str(peft / "adapter_model.safetensors"))
    config = json.loads((peft / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    for name, a in lora.items():
        if ".lora_A." not in name:
            continue
        b = lora[name.replace(".lora_A.", ".lora_B.")]
        target = name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        weights[target] = weights[target].astype(np.float32) + (b @ a) * scale
    save_file(weights, str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def hf_client(tmp_path_factory):
    d = tmp_path_factory.mktemp("peft")
    make_lora(d / "style.gguf", *STYLE)
    as_peft(d / "style.gguf", d / "peft")
    merged_copy(d / "peft", d / "merged")
    (d / "empty").mkdir()
    config = d / "ferrite.toml"
    config.write_text(
        "[cache]\nenabled = false\n"
        "[registry]\nscan = false\nmax_loaded_models = 2\n"
        f'[[registry.models]]\nid = "hf"\npath = "{HF}"\nisq = "none"\n'
        f'adapters = [{{ id = "style", path = "{d / "peft"}" }},'
        f' {{ id = "broken", path = "{d / "empty"}" }}]\n'
        f'[[registry.models]]\nid = "merged"\npath = "{d / "merged"}"\nisq = "none"\n'
    )
    for url in _serve({"FERRITE_CONFIG": str(config)}):
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


def test_mistral_rs_merges_a_peft_adapter_into_its_own_model(hf_client):
    c = hf_client
    base, styled = answer(c, "hf"), answer(c, "hf@style")
    assert styled != base
    (hf,) = [m for m in v1_models(c) if m["key"] == "hf"]
    style = hf["adapters"][0]
    assert (style["key"], style["mode"]) == ("hf@style", "merged")
    assert [i["status"] for i in style["loaded_instances"]] == ["loaded"]
    # The same numbers as adding the adapter to the weights by hand.
    assert styled == answer(c, "merged")
    r = c.chat.completions.create(
        model="hf", messages=QUESTION, temperature=0, max_tokens=24, extra_body={"adapters": ["style"]}
    )
    assert (r.model, r.choices[0].message.content) == ("hf@style", styled)
    assert answer(c, "hf", adapters=[{"id": "style", "scale": 0}]) == base
    # Another scale is another merged model, whose name a client can send back.
    r = c.chat.completions.create(
        model="hf@style", messages=QUESTION, temperature=0, max_tokens=24,
        extra_body={"adapters": [{"id": "style", "scale": 0.5}]},
    )
    assert r.model == "hf@style*0.5" and r.choices[0].message.content not in (base, styled)
    assert answer(c, r.model) == r.choices[0].message.content
    assert c.models.retrieve("hf@style").model_extra["parent"] == "hf"
    # LM Studio's load names it too, and loads the merged model.
    load = urllib.request.Request(f"{base_url(c)}/api/v1/models/load", json.dumps({"model": "hf@style"}).encode(),
                                  {"Content-Type": "application/json"})
    with urllib.request.urlopen(load) as r:
        assert json.load(r)["instance_id"] == "hf@style"
    # Text completions too.
    done = [
        c.completions.create(model=m, prompt="The capital of France is", temperature=0, max_tokens=12)
        .choices[0].text
        for m in ("hf@style", "merged")
    ]
    assert done[0] == done[1]


def test_a_broken_peft_folder_fails_its_load_with_the_reason(hf_client):
    with pytest.raises(openai.InternalServerError) as e:
        answer(hf_client, "hf@broken")
    assert e.value.body["code"] == "model_load_failed"
    assert "not a PEFT LoRA folder" in e.value.body["message"], e.value.body
    assert answer(hf_client, "hf")


def test_adapters_of_the_wrong_kind_stop_the_server_at_startup(tmp_path):
    binary = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRITE_")}
    for path, adapter, words in [
        (HF, tmp_path / "a.gguf", "must be a PEFT folder"),
        (MODEL, tmp_path / "peft", "must be a GGUF LoRA file"),
    ]:
        config = tmp_path / "ferrite.toml"
        config.write_text(f'[[registry.models]]\nid = "m"\npath = "{path}"\n'
                          f'adapters = [{{ id = "a", path = "{adapter}" }}]\n')
        run = subprocess.run(
            [binary, "serve", "--config", str(config), "--model", MODEL, "--port", "0"],
            env={**env, "FERRITE_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0
        assert words in run.stderr, run.stderr


def test_the_anthropic_and_responses_routes_take_adapters(client):
    styled = answer(client, "smol-lora@style")
    claude = anthropic.Anthropic(base_url=base_url(client), api_key="unused", max_retries=0)
    m = claude.messages.create(
        model="smol-lora@style", messages=QUESTION, max_tokens=24, extra_body={"temperature": 0}
    )
    assert (m.model, m.content[0].text) == ("smol-lora@style", styled)
    r = client.responses.create(
        model="smol-lora@style", input=QUESTION[0]["content"], temperature=0, max_output_tokens=24
    )
    assert r.output_text == styled


def test_a_peft_adapter_converted_to_gguf_answers_as_the_original(client):
    # The round trip through PEFT's layout gives back the very adapter.
    assert answer(client, "smol-lora@peft", max_tokens=32) == answer(client, "smol-lora@style", max_tokens=32)
