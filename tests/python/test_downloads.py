"""Getting models as LM Studio users do, against a local server that speaks
the Hugging Face Hub's HTTP API (tests/python/hub_server.py) over real
files: the default model, a split copy of it, a projector. The download
code is what users run; only the endpoint differs. Through every surface:
LM Studio's REST API, `ferrite get`, and LM Studio's Python and JS SDKs."""
import json
import os
import pathlib
import random
import subprocess
import time

import httpx
import lmstudio as lms
import openai
import pytest

from conftest import ROOT, _serve
from hub_server import COMMIT, Hub

MODEL = os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
Q8 = os.environ.get("FERRITE_TEST_MODEL_Q8", str(ROOT / "models/SmolLM2-135M-Instruct.Q8_0.gguf"))
SPLIT = os.environ.get("FERRITE_TEST_SPLIT", str(ROOT / "models/split"))
BIN = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
REPO = "ferrite-test/SmolLM2-135M-Instruct-GGUF"
TOKEN = "hf_test_secret"
# In LM Studio's token form, so that the JS SDK takes it as its apiToken.
BOB = "sk-lm-ferrite2:bobsecretbobsecret12"
ALICE = "sk-alice-chat-only"


def noise(size, seed):
    """Bytes no other file has (so that nothing links them)."""
    return b"GGUF" + random.Random(seed).randbytes(size - 4)


@pytest.fixture(scope="module")
def hub():
    parts = sorted(pathlib.Path(SPLIT).glob("*.gguf"))
    assert len(parts) == 3, f"make test writes the split model to {SPLIT}"
    repos = {
        REPO: {"downloads": 900, "files": {
            "README.md": b"# SmolLM2 for tests\n",
            "SmolLM2-135M-Instruct-Q4_1.gguf": MODEL,
            "SmolLM2-135M-Instruct-Q8_0.gguf": Q8,
        }},
        "ferrite-test/SmolLM2-135M-Instruct-split-GGUF": {"downloads": 500, "files": {
            p.name: str(p) for p in parts}},
        "ferrite-test/vision-GGUF": {"downloads": 10, "files": {
            "tiny-vision-Q4_0.gguf": noise(2 << 20, 1),
            "mmproj-tiny-vision-F16.gguf": noise(1 << 20, 2),
            "mmproj-tiny-vision-Q8_0.gguf": noise(1 << 20, 3),
        }},
        "ferrite-test/resume-GGUF": {"files": {"resume-Q4_0.gguf": noise(16 << 20, 4)}},
        "ferrite-test/corrupt-GGUF": {"wrong_sha": True, "files": {"corrupt-Q4_0.gguf": noise(4 << 20, 5)}},
        "ferrite-test/slow-GGUF": {"files": {"slow-Q4_0.gguf": noise(32 << 20, 6)}},
        "ferrite-test/gated-GGUF": {"gated": True, "token": TOKEN, "files": {"gated-Q4_0.gguf": noise(1 << 20, 7)}},
        "ferrite-test/twin-a-GGUF": {"files": {"twin-Q4_0.gguf": noise(8 << 20, 8)}},
        "ferrite-test/twin-b-GGUF": {"files": {"twin-Q4_0.gguf": noise(8 << 20, 8)}},
        "ferrite-test/cached-GGUF": {"files": {"cached-Q4_0.gguf": noise(4 << 20, 9)}},
        "ferrite-test/hfcache-GGUF": {"files": {"hfcache-Q4_0.gguf": noise(3 << 20, 10)}},
        "ferrite-test/sdk-GGUF": {"files": {"sdk-Q4_0.gguf": noise(24 << 20, 11)}},
        "ferrite-test/js-GGUF": {"files": {"js-Q4_0.gguf": noise(24 << 20, 12)}},
        "ferrite-test/notes": {"tags": [], "files": {"README.md": b"no model here"}},
    }
    hub = Hub(repos).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("downloads")
    (root / "models").mkdir()
    (root / "hf").mkdir()
    return root


@pytest.fixture(scope="module")
def server(hub, dirs, tmp_path_factory):
    config = tmp_path_factory.mktemp("dl-config") / "ferrite.toml"
    config.write_text(
        "[registry]\nscan = true\nmax_loaded_models = 2\n"
        f'[[auth.api_keys]]\nname = "alice"\nkey = "{ALICE}"\nscopes = ["chat"]\n'
        f'[[auth.api_keys]]\nname = "bob"\nkey = "{BOB}"\n'
    )
    yield from _serve({
        "FERRITE_CONFIG": str(config),
        "FERRITE_REGISTRY__SCAN": "true",
        "FERRITE_REGISTRY__DIR": str(dirs / "models"),
        "FERRITE_DOWNLOADS__ENDPOINT": hub.url,
        "FERRITE_DOWNLOADS__HF_CACHE": str(dirs / "hf"),
        "FERRITE_DOWNLOADS__STALL_SECS": "5",
        "HF_TOKEN": TOKEN,
    })


def root(url):
    return url.removesuffix("/v1")


def api(server, method, path, body=None, key=BOB):
    r = httpx.request(method, f"{root(server)}{path}", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})
    return r.status_code, r.json()


def start(server, model, quantization=None):
    status, body = api(server, "POST", "/api/v1/models/download",
                       {"model": model, "quantization": quantization})
    assert status == 200, body
    return body


def wait(server, job, within=120):
    deadline = time.time() + within
    seen = []
    while time.time() < deadline:
        status, body = api(server, "GET", f"/api/v1/models/download/status/{job}")
        assert status == 200, body
        seen.append(body)
        if body["status"] != "downloading":
            return body, seen
        time.sleep(0.1)
    raise AssertionError(f"still downloading after {within}s: {seen[-1]}")


def test_a_quantization_by_tag_then_chatted_with(server, hub, dirs):
    job = start(server, REPO, "q8_0")
    assert job["status"] == "downloading" and job["job_id"].startswith("job_")
    assert job["total_size_bytes"] == os.path.getsize(Q8)
    assert job["started_at"].endswith("Z")
    done, seen = wait(server, job["job_id"])
    assert done["status"] == "completed", done
    assert done["downloaded_bytes"] == done["total_size_bytes"]
    assert done["completed_at"] and done["commit"] == COMMIT
    target = dirs / "models" / REPO / "SmolLM2-135M-Instruct-Q8_0.gguf"
    assert done["path"] == str(target)
    assert target.read_bytes() == pathlib.Path(Q8).read_bytes()
    assert not list(target.parent.glob("*.incomplete"))
    # The token went to the Hub, never to the host that served the body.
    assert all(s["auth"] is None for s in hub.served)
    key = done["model_key"]
    assert key, done
    models = openai.OpenAI(base_url=server, api_key=BOB).models.list()
    assert key in [m.id for m in models.data]
    answer = openai.OpenAI(base_url=server, api_key=BOB).chat.completions.create(
        model=key, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert answer.model == key and answer.choices[0].message.content
    # Asked again, it is there already.
    again = start(server, REPO, "Q8_0")
    assert again["status"] == "already_downloaded" and "job_id" not in again
    assert again["model_key"] == key
    metrics = httpx.get(f"{root(server)}/metrics", headers={"Authorization": f"Bearer {BOB}"}).text
    assert 'ferrite:downloads_total{outcome="completed"} 1' in metrics, metrics
    assert 'ferrite:downloads_total{outcome="already_downloaded"} 1' in metrics
    bytes_line = next(l for l in metrics.splitlines() if l.startswith("ferrite:download_bytes_total"))
    assert int(float(bytes_line.split()[-1])) == os.path.getsize(Q8)


def test_no_tag_takes_q4_k_m_then_q8_0_and_options_list_sizes(server):
    status, offered = api(server, "GET", f"/api/v1/models/download/options?model={REPO}")
    assert status == 200, offered
    quants = {o["quantization"]: o for o in offered["options"]}
    assert set(quants) == {"Q4_1", "Q8_0"}
    assert quants["Q8_0"]["recommended"] and not quants["Q4_1"]["recommended"]
    assert quants["Q4_1"]["size_bytes"] == os.path.getsize(MODEL)
    # No Q4_K_M here: a download without a tag gets Q8_0 (already present).
    assert start(server, f"https://huggingface.co/{REPO}")["status"] == "already_downloaded"


def test_a_split_model_and_a_projector(server, dirs):
    done, _ = wait(server, start(server, "ferrite-test/SmolLM2-135M-Instruct-split-GGUF")["job_id"])
    assert done["status"] == "completed", done
    folder = dirs / "models/ferrite-test/SmolLM2-135M-Instruct-split-GGUF"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in pathlib.Path(SPLIT).glob("*.gguf"))
    # One model, from its first part; it loads and answers.
    key = done["model_key"]
    assert key and done["path"].endswith("-00001-of-00003.gguf")
    ids = [m.id for m in openai.OpenAI(base_url=server, api_key=BOB).models.list().data]
    assert key in ids and not any("00002-of" in i for i in ids), ids
    answer = openai.OpenAI(base_url=server, api_key=BOB).chat.completions.create(
        model=key, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert answer.choices[0].message.content
    done, _ = wait(server, start(server, "ferrite-test/vision-GGUF:q4_0")["job_id"])
    assert done["status"] == "completed", done
    names = sorted(p.name for p in (dirs / "models/ferrite-test/vision-GGUF").iterdir())
    assert names == ["mmproj-tiny-vision-F16.gguf", "tiny-vision-Q4_0.gguf"]


def test_a_cut_download_resumes_with_the_rest_only(server, hub, dirs):
    size = 16 << 20
    hub.cut_next = 5 << 20
    done, _ = wait(server, start(server, "ferrite-test/resume-GGUF")["job_id"])
    assert done["status"] == "failed", done
    folder = dirs / "models/ferrite-test/resume-GGUF"
    partial = folder / "resume-Q4_0.gguf.incomplete"
    assert partial.stat().st_size == 5 << 20
    assert not (folder / "resume-Q4_0.gguf").exists()
    hub.served.clear()
    done, _ = wait(server, start(server, "ferrite-test/resume-GGUF")["job_id"])
    assert done["status"] == "completed", done
    assert [(s["from"], s["sent"]) for s in hub.served] == [(5 << 20, size - (5 << 20))]
    assert done["fetched_bytes"] == size - (5 << 20)
    assert (folder / "resume-Q4_0.gguf").stat().st_size == size
    assert not partial.exists()


def test_a_server_that_ignores_the_range_restarts_cleanly(server, hub, dirs):
    hub.cut_next = 3 << 20
    job = start(server, "ferrite-test/cached-GGUF")
    assert wait(server, job["job_id"])[0]["status"] == "failed"
    hub.ignore_ranges = True
    try:
        done, _ = wait(server, start(server, "ferrite-test/cached-GGUF")["job_id"])
    finally:
        hub.ignore_ranges = False
    assert done["status"] == "completed", done
    target = dirs / "models/ferrite-test/cached-GGUF/cached-Q4_0.gguf"
    assert target.read_bytes() == hub.blobs[hub.repos["ferrite-test/cached-GGUF"]["entries"]["cached-Q4_0.gguf"]["sha"]]


def test_a_wrong_checksum_installs_nothing(server, dirs):
    done, _ = wait(server, start(server, "ferrite-test/corrupt-GGUF")["job_id"])
    assert done["status"] == "failed"
    assert "sha256" in done["error"], done
    folder = dirs / "models/ferrite-test/corrupt-GGUF"
    assert list(folder.iterdir()) == []


def test_refusals_in_plain_words(server, hub):
    status, body = api(server, "POST", "/api/v1/models/download", {"model": "ferrite-test/missing-GGUF"})
    assert status == 404 and "does not exist" in body["error"]["message"], body
    status, body = api(server, "POST", "/api/v1/models/download",
                       {"model": f"https://huggingface.co/{REPO}/blob/main/nothing-Q2_K.gguf"})
    assert status == 404 and "nothing-Q2_K.gguf" in body["error"]["message"], body
    status, body = api(server, "POST", "/api/v1/models/download", {"model": REPO, "quantization": "Q5_K_M"})
    assert status == 404 and "Q8_0" in body["error"]["message"], body
    status, body = api(server, "POST", "/api/v1/models/download", {"model": "ferrite-test/notes"})
    assert status == 404 and "no GGUF" in body["error"]["message"], body
    for bad in ["../../etc/passwd", "owner/../../x", "/abs/path"]:
        status, body = api(server, "POST", "/api/v1/models/download", {"model": bad})
        assert status == 400, (bad, body)
    # Gated: this server has the token (HF_TOKEN); without it the Hub refuses.
    done, _ = wait(server, start(server, "ferrite-test/gated-GGUF")["job_id"])
    assert done["status"] == "completed", done
    # Held, not only advanced: a generator nothing refers to is closed at
    # once, and closing it stops its server.
    served = _serve({"FERRITE_DOWNLOADS__ENDPOINT": hub.url, "FERRITE_REGISTRY__DIR": "/tmp/none"})
    tokenless = next(served)
    try:
        status, body = api(tokenless, "POST", "/api/v1/models/download", {"model": "ferrite-test/gated-GGUF"})
        assert status == 200, body
        done, _ = wait(tokenless, body["job_id"])
        assert done["status"] == "failed" and "gated" in done["error"], done
    finally:
        served.close()


def test_cancel_leaves_nothing_and_two_run_at_once(server, hub, dirs):
    hub.rate = 4 << 20  # 4 MiB/s: 32 MiB take 8 seconds
    try:
        slow = start(server, "ferrite-test/slow-GGUF")
        other = start(server, "ferrite-test/twin-a-GGUF")
        time.sleep(1)
        status, body = api(server, "GET", f"/api/v1/models/download/status/{slow['job_id']}")
        assert body["status"] == "downloading" and body["bytes_per_second"] > 0, body
        assert body["estimated_completion"], body
        status, cancelled = api(server, "DELETE", f"/api/v1/models/download/{slow['job_id']}")
        assert status == 200
        done, _ = wait(server, slow["job_id"])
        twin, _ = wait(server, other["job_id"])
    finally:
        hub.rate = None
    assert done["status"] == "failed" and "cancelled" in done["error"], done
    assert list((dirs / "models/ferrite-test/slow-GGUF").iterdir()) == []
    assert twin["status"] == "completed", twin


def test_a_file_already_on_disk_is_hard_linked(server, hub, dirs):
    first = dirs / "models/ferrite-test/twin-a-GGUF/twin-Q4_0.gguf"
    if not first.exists():
        assert wait(server, start(server, "ferrite-test/twin-a-GGUF")["job_id"])[0]["status"] == "completed"
    hub.served.clear()
    done, _ = wait(server, start(server, "ferrite-test/twin-b-GGUF")["job_id"])
    assert done["status"] == "completed" and done["fetched_bytes"] == 0, done
    second = dirs / "models/ferrite-test/twin-b-GGUF/twin-Q4_0.gguf"
    assert os.path.samefile(first, second) and second.stat().st_nlink == 2
    assert hub.served == []
    # The same from the Hugging Face cache (blobs are named by their sha256).
    entry = hub.repos["ferrite-test/hfcache-GGUF"]["entries"]["hfcache-Q4_0.gguf"]
    blob = dirs / "hf/models--someone--else/blobs" / entry["sha"]
    blob.parent.mkdir(parents=True)
    blob.write_bytes(hub.blobs[entry["sha"]])
    done, _ = wait(server, start(server, "ferrite-test/hfcache-GGUF")["job_id"])
    assert done["status"] == "completed" and done["fetched_bytes"] == 0, done
    assert os.path.samefile(blob, dirs / "models/ferrite-test/hfcache-GGUF/hfcache-Q4_0.gguf")


def test_downloading_needs_models_manage(server):
    status, body = api(server, "POST", "/api/v1/models/download", {"model": REPO}, key=ALICE)
    assert status == 403 and "models:manage" in body["error"]["message"], body
    status, body = api(server, "GET", "/api/v1/models/download/search?query=smol", key=ALICE)
    assert status == 403
    host = root(server).removeprefix("http://")

    class Alice(lms.Client):
        def _create_auth_message(self):
            return self._format_auth_message("alice", ALICE)

    with Alice(host) as c:
        with pytest.raises(lms.LMStudioServerError, match="models:manage"):
            c.repository.search_models("smollm2")


def test_ferrite_get_with_yes(server, dirs):
    env = {**os.environ, "FERRITE_URL": root(server), "FERRITE_API_KEY": BOB}
    run = subprocess.run([BIN, "get", "-y", f"{REPO}:Q4_1"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    target = dirs / "models" / REPO / "SmolLM2-135M-Instruct-Q4_1.gguf"
    assert str(target) in run.stdout, run.stdout
    assert target.stat().st_size == os.path.getsize(MODEL)
    # Search words: the first match (GGUF repos first, most downloaded).
    run = subprocess.run([BIN, "get", "-y", "smollm2", "instruct"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert REPO in run.stdout and "already downloaded" in run.stdout, run.stdout
    run = subprocess.run([BIN, "get", "-y", "no-such-words-anywhere"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert run.returncode != 0 and "no model" in run.stderr


class Keyed(lms.Client):
    def _create_auth_message(self):
        return self._format_auth_message("bob", BOB)


def test_the_python_sdk_searches_and_downloads(server, hub):
    host = root(server).removeprefix("http://")
    with Keyed(host) as c:
        results = c.repository.search_models("split", limit=5)
        assert [r.search_result.name for r in results] == ["ferrite-test/SmolLM2-135M-Instruct-split-GGUF"]
        # A fresh download: progress as it goes, finalizing, then the key.
        hub.rate = 16 << 20
        try:
            (result,) = c.repository.search_models("sdk-gguf")
            (option,) = result.get_download_options()
            assert option.info.quantization == "Q4_0" and option.info.recommended
            assert option.info.size_bytes == 24 << 20
            progress, finalized = [], []
            key = option.download(on_progress=progress.append, on_finalize=lambda: finalized.append(1))
        finally:
            hub.rate = None
        assert progress and progress[-1].total_bytes == 24 << 20, progress
        assert finalized and key == "sdk-q4_0", key
        # The real model, then used: a key the SDK loads and predicts with.
        (result,) = c.repository.search_models("SmolLM2-135M-Instruct-GGUF")
        options = {o.info.quantization: o for o in result.get_download_options()}
        assert set(options) == {"Q4_1", "Q8_0"} and options["Q8_0"].info.recommended
        key = options["Q4_1"].download()
        assert key in [m.model_key for m in c.list_downloaded_models()]
        assert c.llm.model(key).respond("Hi", config={"maxTokens": 4}).content


def test_the_js_sdk_downloads(server, hub):
    script = ROOT / "tests/node/downloads.mjs"
    hub.rate = 16 << 20
    run = subprocess.run(
        ["node", str(script), f"ws://{root(server).removeprefix('http://')}", BOB],
        capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/node",
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    hub.rate = None
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["key"] == "js-q4_0" and result["progress"] > 0, result
