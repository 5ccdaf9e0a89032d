"""The web app at `/` and its conversations API: the committed bundle is the
one its sources build, the front end's own unit tests and type check, the
bundle served from the binary (gzip, ETag, `--no-ui`), the conversations
API per tenant with its errors, and the app end to end in headless
Chromium (Playwright from npm) against the real server and models."""
import filecmp
import os
import subprocess

import httpx
import pytest

from conftest import ROOT, _serve
from hub_server import Hub, downloading_from
from test_images import VLM, png

WEB = ROOT / "web"
ARTIFACTS = ROOT / "web/test-results"
CHAT = "smollm2-135m-instruct"
VISION = "smol-vision"
KEY = "sk-web-user"
# One request a minute: the second finds its budget spent.
BROKE = "sk-web-broke"
MODEL = os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
HUB_REPO = "ferrite-test/SmolLM2-135M-Instruct-GGUF"
SLOW_REPO = "ferrite-test/slow-GGUF"
OTHER = "sk-web-other"


@pytest.fixture(scope="module")
def hub():
    """The default model to download, and a slow file to cancel."""
    hub = Hub({
        HUB_REPO: {"downloads": 900, "files": {"SmolLM2-135M-Instruct-Q4_1.gguf": MODEL}},
        SLOW_REPO: {"downloads": 3, "rate": 2 << 20,
                    "files": {"slow-Q4_0.gguf": b"GGUF" + os.urandom(24 << 20)}},
    }).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, hub):
    """Auth on with two tenants' keys; the default model and a vision model;
    downloads from the local Hub into a models folder of its own."""
    tmp = tmp_path_factory.mktemp("web")
    # Its header and metadata read, its tensors cut off: listed, never loaded.
    broken = tmp / "broken.gguf"
    with open(MODEL, "rb") as f:
        broken.write_bytes(f.read(8 << 20))
    config = tmp / "ferrite.toml"
    config.write_text(
        f'[[registry.models]]\nid = "{VISION}"\npath = "{VLM}"\n'
        f'[[auth.api_keys]]\nname = "web"\nkey = "{KEY}"\nscopes = ["chat", "models:manage"]\n'
        f'[[auth.api_keys]]\nname = "other"\nkey = "{OTHER}"\nscopes = ["chat"]\n'
        f'[[auth.api_keys]]\nname = "broke"\nkey = "{BROKE}"\nscopes = ["chat"]\n'
        f'[[registry.models]]\nid = "broken"\npath = "{broken}"\n'
        '[budgets.tenants.broke]\nrequests_per_minute = 1\n'
    )
    for v1 in _serve({"FERRITE_CONFIG": str(config), **downloading_from(hub, tmp)}):
        yield v1.removesuffix("/v1")


def npx(*args, env=None, timeout=300):
    return subprocess.run(["npx", "--no-install", *args], cwd=WEB, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def as_(key):
    return {"Authorization": f"Bearer {key}"}


def test_the_committed_bundle_is_what_its_sources_build(tmp_path):
    out = tmp_path / "dist"
    run = npx("vite", "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn")
    assert run.returncode == 0, run.stdout + run.stderr
    compared = filecmp.dircmp(WEB / "dist", out)
    stale = compared.left_only + compared.right_only + compared.diff_files
    for sub in compared.subdirs.values():
        stale += sub.left_only + sub.right_only + sub.diff_files
    assert not stale, f"web/dist differs from its sources (run `make ui`): {stale}"


def test_the_front_ends_own_tests_and_types():
    run = npx("vitest", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    run = npx("svelte-check", "--tsconfig", "./tsconfig.json", "--fail-on-warnings")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_bundle_is_served_from_the_binary_with_gzip_and_etags(server):
    page = httpx.get(f"{server}/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
    assert page.headers["content-type"].startswith("text/html") and "<div id=\"app\">" in page.text
    assert page.headers["cache-control"] == "no-cache"
    again = httpx.get(f"{server}/", headers={"Accept-Encoding": "gzip", "If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and not again.content
    plain = httpx.get(f"{server}/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["etag"] != page.headers["etag"]
    script = next(p for p in (WEB / "dist/assets").iterdir() if p.suffix == ".js")
    asset = httpx.get(f"{server}/assets/{script.name}", headers={"Accept-Encoding": "identity"})
    assert asset.status_code == 200 and asset.content == script.read_bytes()
    assert "immutable" in asset.headers["cache-control"]
    missing = httpx.get(f"{server}/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    # The page is open; what it reads is not.
    assert httpx.get(f"{server}/v1/app/conversations").status_code == 401


def test_no_ui_turns_the_page_off():
    for v1 in _serve(args=("--no-ui",)):
        root = v1.removesuffix("/v1")
        r = httpx.get(f"{root}/")
        assert r.status_code == 404 and "--no-ui" in r.json()["error"]["message"]
        assert httpx.get(f"{v1}/models").status_code == 200


def message(id, parent=None, role="user", content="hi"):
    return {"id": id, "parent": parent, "role": role, "content": content}


def test_conversations_are_kept_per_tenant(server):
    api = f"{server}/v1/app/conversations"
    body = {"title": "Rivers", "model": CHAT, "messages": [
        message("q1", content="Name three rivers."), message("a1", "q1", "assistant", "Nile, Amazon, Rhine."),
    ], "current": "a1"}
    made = httpx.post(api, json=body, headers=as_(KEY))
    assert made.status_code == 201, made.text
    c = made.json()
    assert c["id"].startswith("conv_") and c["title"] == "Rivers" and c["current"] == "a1"
    assert httpx.get(f"{api}/{c['id']}", headers=as_(KEY)).json() == c

    # A regeneration is a branch; a rename keeps the messages.
    body["messages"].append(message("a2", "q1", "assistant", "The Danube."))
    body["current"], body["title"] = "a2", "Long rivers"
    replaced = httpx.put(f"{api}/{c['id']}", json=body, headers=as_(KEY)).json()
    assert replaced["created_at"] == c["created_at"] and replaced["updated_at"] >= c["updated_at"]
    assert [m["id"] for m in replaced["messages"]] == ["q1", "a1", "a2"]
    listed = httpx.get(api, headers=as_(KEY)).json()["data"]
    assert [(x["id"], x["title"], x["message_count"]) for x in listed] == [(c["id"], "Long rivers", 3)]
    assert [x["id"] for x in httpx.get(api, params={"search": "danube"}, headers=as_(KEY)).json()["data"]] == [c["id"]]
    assert httpx.get(api, params={"search": "volga"}, headers=as_(KEY)).json()["data"] == []

    # Another tenant sees nothing and can change nothing.
    assert httpx.get(api, headers=as_(OTHER)).json()["data"] == []
    assert httpx.get(f"{api}/{c['id']}", headers=as_(OTHER)).status_code == 404
    assert httpx.put(f"{api}/{c['id']}", json=body, headers=as_(OTHER)).status_code == 404
    assert httpx.delete(f"{api}/{c['id']}", headers=as_(OTHER)).status_code == 404

    # Exported and imported as new conversations, into another tenant too.
    exported = httpx.get(f"{api}/export", headers=as_(KEY)).json()
    assert exported["object"] == "ferrite.conversations" and len(exported["conversations"]) == 1
    imported = httpx.post(f"{api}/import", json=exported, headers=as_(OTHER))
    assert imported.status_code == 200, imported.text
    copy = imported.json()["data"][0]
    assert copy["id"] != c["id"] and copy["title"] == "Long rivers"
    theirs = httpx.get(f"{api}/{copy['id']}", headers=as_(OTHER)).json()
    assert theirs["messages"] == replaced["messages"]

    deleted = httpx.delete(f"{api}/{c['id']}", headers=as_(KEY))
    assert deleted.json() == {"id": c["id"], "object": "conversation.deleted", "deleted": True}
    assert httpx.get(f"{api}/{c['id']}", headers=as_(KEY)).status_code == 404
    assert httpx.get(f"{api}/{copy['id']}", headers=as_(OTHER)).status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"messages": [message("a", "nope")]}, "messages[0].parent"),
    ({"messages": [message("a"), message("a")]}, "messages[1].id"),
    ({"messages": [message("a", role="robot")]}, "messages[0].role"),
    ({"messages": [message("a")], "current": "b"}, "current"),
    ({"title": "x" * 201}, "title"),
    ({"settings": [1, 2]}, "settings"),
    ({"messages": [{**message("a"), "stats": 3}]}, "messages[0].stats"),
    ({"messages": "many"}, None),
    ({"surprise": 1}, None),
])
def test_bad_conversations_are_refused_by_name(server, body, param):
    before = httpx.get(f"{server}/v1/app/conversations", headers=as_(KEY)).json()["data"]
    r = httpx.post(f"{server}/v1/app/conversations", json=body, headers=as_(KEY))
    assert r.status_code == 400, r.text
    if param:
        assert r.json()["error"]["param"] == param
    assert httpx.get(f"{server}/v1/app/conversations", headers=as_(KEY)).json()["data"] == before


def test_other_bad_requests(server):
    api = f"{server}/v1/app/conversations"
    assert httpx.post(api, content=b"{nope", headers={**as_(KEY), "Content-Type": "application/json"}).status_code == 400
    assert httpx.get(api, params={"limit": 0}, headers=as_(KEY)).status_code == 400
    assert httpx.get(f"{api}/conv_missing", headers=as_(KEY)).status_code == 404
    wrong = httpx.post(f"{api}/import", json={"object": "list", "version": 1, "conversations": []}, headers=as_(KEY))
    assert wrong.status_code == 400
    bad = {"object": "ferrite.conversations", "version": 1, "conversations": [
        {"id": "x", "object": "conversation", "created_at": 1, "updated_at": 1, "title": "t", "model": None,
         "system_prompt": None, "settings": None, "messages": [message("a", "b")], "current": None}]}
    r = httpx.post(f"{api}/import", json=bad, headers=as_(KEY))
    assert r.status_code == 400 and r.json()["error"]["param"] == "conversations[0].messages[0].parent"


def test_the_app_in_a_browser(server, tmp_path):
    image = tmp_path / "five.png"
    image.write_bytes(png(5))
    run = npx("playwright", "test", env={
        "FERRITE_URL": server, "FERRITE_KEY": KEY, "FERRITE_CHAT": CHAT, "FERRITE_VISION": VISION,
        "FERRITE_HUB_REPO": HUB_REPO, "FERRITE_SLOW_REPO": SLOW_REPO, "FERRITE_BROKE_KEY": BROKE,
        "FERRITE_TEST_IMAGE": str(image), "FERRITE_UI_ARTIFACTS": str(ARTIFACTS),
        "FERRITE_TEST_CHROMIUM": os.environ.get("FERRITE_TEST_CHROMIUM", "/usr/bin/chromium"),
    }, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    shots = {p.name for p in (ARTIFACTS / "screens").iterdir()}
    assert {"key-dialog.png", "chat.png", "branches.png", "settings.png", "vision.png", "models.png", "error.png", "dark.png",
            "downloads.png", "status.png", "typeset.png",
            "tool-call.png"} <= shots
