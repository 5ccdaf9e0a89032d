"""The OpenAPI document against the live server: a valid OpenAPI 3.1
document, every live route documented and every documented route live, real
responses matching their schemas with no undocumented fields, the /docs page
served from the binary, and schemathesis fuzzing every operation."""
import json
import os
import pathlib
import re
import subprocess
import sys
from xml.etree import ElementTree

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from conftest import ROOT, _serve
from hub_server import Hub

METHODS = ["get", "post", "put", "patch", "delete"]
# Paths an OpenAI or LM Studio client might try; those not documented must
# be unknown to the server too.
PROBES = [
    "/", "/v1", "/v1/embeddings", "/v1/responses", "/v1/images/generations",
    "/v1/audio/transcriptions", "/v1/files", "/v1/moderations", "/v1/batches",
    "/api/v0/models", "/api/v0/chat/completions", "/api/v1/models/load",
    "/openapi.yaml", "/swagger", "/redoc", "/docs/", "/v1/memory/search/x",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Memory on (so /v1/memory answers), completions capped at 16 tokens,
    so that fuzzed requests finish quickly, and downloads from an empty local
    Hub into a folder of the test's own (the real one is out of reach)."""
    hub = Hub({}).start()
    models = tmp_path_factory.mktemp("openapi-models")
    for url in _serve({"FERRITE_MEMORY__ENABLED": "true", "FERRITE_MODEL__MAX_TOKENS": "16",
                       "FERRITE_DOWNLOADS__ENDPOINT": hub.url,
                       "FERRITE_REGISTRY__DIR": str(models)}):
        yield url.removesuffix("/v1")
    hub.stop()


@pytest.fixture(scope="module")
def doc(base):
    return httpx.get(f"{base}/openapi.json").json()


def concrete(template, model="smollm2-135m-instruct"):
    values = {"model": model, "id": "1", "file": "swagger-ui.css", "name": "assistant",
              "job_id": "job_none"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def template_of(doc, path):
    for template in doc["paths"]:
        pattern = re.sub(r"\\\{model\\\}", ".+", re.escape(template))
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", pattern)
        if re.fullmatch(pattern, path):
            return template
    return None


def unrouted(resp):
    """The server's fallbacks: no route for the path, or not this method."""
    if resp.status_code == 405:
        return True
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return False
    return resp.status_code == 404 and message.startswith("Invalid URL")


def test_document_is_valid_openapi_3_1_and_the_cli_prints_it(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    error = doc["components"]["schemas"]["ApiError"]
    assert set(error["required"]) >= {"message", "type"}
    assert set(error["properties"]) == {"message", "type", "param", "code"}
    chat = doc["components"]["schemas"]["ChatRequest"]["properties"]
    assert {"memory", "cache", "top_k", "min_p", "repeat_penalty"} <= set(chat)
    binary = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
    printed = subprocess.run([binary, "openapi"], capture_output=True, check=True, text=True)
    assert json.loads(printed.stdout) == doc


def test_every_documented_operation_is_live(doc, base):
    with httpx.Client(base_url=base, timeout=120) as client:
        for template, item in doc["paths"].items():
            for method in item:
                body = {"prompt": "Hi", "max_tokens": 1} if method == "post" else None
                resp = client.request(method, concrete(template), json=body)
                assert not unrouted(resp), f"{method.upper()} {template} is documented but not routed"


def test_every_live_route_is_documented(doc, base):
    candidates = [concrete(t) for t in doc["paths"]] + PROBES
    with httpx.Client(base_url=base, timeout=120) as client:
        for path in candidates:
            for method in METHODS:
                body = {"prompt": "Hi", "max_tokens": 1} if method in ("post", "put", "patch") else None
                resp = client.request(method, path, json=body)
                template = template_of(doc, path)
                documented = template is not None and method in doc["paths"][template]
                assert unrouted(resp) != documented, (
                    f"{method.upper()} {path}: status {resp.status_code}, documented: {documented}"
                )


def undocumented(doc, schema, value, where="$"):
    """Fields of `value` that `schema` does not name (the schema itself is
    checked by jsonschema; this catches what it lets through)."""
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [undocumented(doc, s, value, where) for s in schema[key]]
            return min(options, key=len)
    if isinstance(value, dict) and "properties" in schema:
        extra = [f"{where}.{k}" for k in value if k not in schema["properties"]]
        for k, v in value.items():
            if k in schema["properties"]:
                extra += undocumented(doc, schema["properties"][k], v, f"{where}.{k}")
        return extra
    if isinstance(value, list) and "items" in schema:
        return [e for i, v in enumerate(value) for e in undocumented(doc, schema["items"], v, f"{where}[{i}]")]
    return []


def conforms(doc, template, method, resp, media="application/json"):
    declared = doc["paths"][template][method]["responses"][str(resp.status_code)]
    assert resp.headers["content-type"].split(";")[0] == media
    schema = declared["content"][media]["schema"]
    if media == "text/event-stream":
        # Each event's `data` is documented as JSON with its own schema.
        data = schema["properties"]["data"]["anyOf"]
        assert data[0] == {"const": "[DONE]"}
        assert data[1]["contentMediaType"] == "application/json"
        schema = data[1]["contentSchema"]["anyOf"][0]
    bodies = (
        [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
        if media == "text/event-stream"
        else [resp.json()]
    )
    assert bodies
    for body in bodies:
        jsonschema.validate(body, {**doc, **schema})
        assert undocumented(doc, schema, body) == [], f"{method.upper()} {template}"


def test_real_responses_match_their_schemas(doc, base):
    chat = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8, "logprobs": True,
            "top_logprobs": 2}
    with httpx.Client(base_url=base, timeout=120, headers={"x-ferrite-debug": "1"}) as c:
        conforms(doc, "/v1/chat/completions", "post", c.post("/v1/chat/completions", json=chat))
        stream = c.post("/v1/chat/completions", json={**chat, "stream": True, "stream_options": {"include_usage": True}})
        conforms(doc, "/v1/chat/completions", "post", stream, "text/event-stream")
        text = {"prompt": "The capital of France is", "max_tokens": 4, "logprobs": 2, "echo": True}
        conforms(doc, "/v1/completions", "post", c.post("/v1/completions", json=text))
        stream = c.post("/v1/completions", json={**text, "stream": True})
        conforms(doc, "/v1/completions", "post", stream, "text/event-stream")
        conforms(doc, "/api/v0/chat/completions", "post", c.post("/api/v0/chat/completions", json=chat))
        conforms(doc, "/api/v0/completions", "post", c.post("/api/v0/completions", json=text))
        conforms(doc, "/api/v0/models", "get", c.get("/api/v0/models"))
        conforms(doc, "/api/v0/models/{model}", "get", c.get("/api/v0/models/smollm2-135m-instruct"))
        conforms(doc, "/v1/models", "get", c.get("/v1/models"))
        conforms(doc, "/v1/models/{model}", "get", c.get("/v1/models/smollm2-135m-instruct"))
        conforms(doc, "/v1/memory", "get", c.get("/v1/memory"))
        conforms(doc, "/v1/memory/search", "get", c.get("/v1/memory/search", params={"q": "hi"}))
        conforms(doc, "/v1/memory", "delete", c.delete("/v1/memory"))
        conforms(doc, "/api/v1/models", "get", c.get("/api/v1/models"))
        load = {"model": "smollm2-135m-instruct"}
        conforms(doc, "/api/v1/models/load", "post", c.post("/api/v1/models/load", json=load))
        streamed = c.post("/api/v1/models/load", json={**load, "stream": True})
        conforms(doc, "/api/v1/models/load", "post", streamed, "text/event-stream")
        conforms(doc, "/tokenize", "post", c.post("/tokenize", json={"content": "Hello there"}))
        pieces = c.post("/tokenize", json={"content": "Hello there", "with_pieces": True})
        conforms(doc, "/tokenize", "post", pieces)
        conforms(doc, "/detokenize", "post", c.post("/detokenize", json={"tokens": [1, 2, 3]}))
        conforms(doc, "/apply-template", "post", c.post("/apply-template", json=chat))
        message = {"model": "smollm2-135m-instruct", "max_tokens": 8,
                   "messages": [{"role": "user", "content": "Say hi"}]}
        conforms(doc, "/v1/messages", "post", c.post("/v1/messages", json=message))
        stream = c.post("/v1/messages", json={**message, "stream": True})
        conforms(doc, "/v1/messages", "post", stream, "text/event-stream")
        count = {k: v for k, v in message.items() if k != "max_tokens"}
        conforms(doc, "/v1/messages/count_tokens", "post", c.post("/v1/messages/count_tokens", json=count))
        conforms(doc, "/v1/messages", "post", c.post("/v1/messages", json={**message, "model": "nope"}))
        conforms(doc, "/health", "get", c.get("/health"))
        conforms(doc, "/ready", "get", c.get("/ready"))
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        # Errors: each with a documented status and the OpenAI error object.
        bad = c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        conforms(doc, "/v1/chat/completions", "post", bad)
        conforms(doc, "/v1/models/{model}", "get", c.get("/v1/models/no-such-model"))
        conforms(doc, "/v1/memory/{id}", "delete", c.delete("/v1/memory/999999"))
        too_big = c.post("/v1/completions", content=b"x" * (9 << 20), headers={"content-type": "application/json"})
        conforms(doc, "/v1/completions", "post", too_big)


def test_docs_page_is_served_from_the_binary(base):
    page = httpx.get(f"{base}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs, page.text
    # Nothing comes from another host: the page works offline.
    assert all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for ref in refs:
        asset = httpx.get(f"{base}{ref}")
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].startswith(kinds[pathlib.Path(ref).suffix]), ref
        assert len(asset.content) > 10_000, ref
    assert b"SwaggerUIBundle" in httpx.get(f"{base}/docs/swagger-ui-bundle.js").content
    assert "Apache License" in httpx.get(f"{base}/docs/LICENSE").text
    assert httpx.get(f"{base}/docs/nothing.js").status_code == 404


def test_schemathesis_finds_no_server_error_and_no_schema_violation(base, tmp_path):
    seed = os.environ.get("FERRITE_FUZZ_SEED", "42")
    st = pathlib.Path(sys.executable).parent / "st"
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [str(st), "run", f"{base}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,no_internals_in_errors",
         "--max-examples", os.environ.get("FERRITE_FUZZ_EXAMPLES", "40"), "--seed", seed,
         "--workers", "2", "--request-timeout", "120", "--no-color",
         "--report", "junit", "--report-junit-path", str(junit)],
        capture_output=True, text=True, timeout=1800,
        # st_hooks.py adds the check that error bodies carry no internals.
        env={**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks",
             "PYTHONPATH": str(pathlib.Path(__file__).parent)},
    )
    output = run.stdout[:12000] + run.stderr[-2000:]
    report = ElementTree.parse(junit).getroot()
    # Every check failure fails the test. Errors inside schemathesis's own
    # data generation say nothing about the server: Hypothesis reporting a
    # flaky generator under its time budget, or failing to describe one of
    # its own lambdas (CPython's AST recursion guard, raced by the two
    # workers); any other error fails it too.
    tool_errors = ("Inconsistent results", "AST constructor recursion depth mismatch")
    failures = report.findall(".//failure")
    errors = [e for e in report.findall(".//error")
              if not any(t in e.get("message", "") + (e.text or "") for t in tool_errors)]
    assert not failures and not errors, output
    assert run.returncode == 0 or report.findall(".//error"), output
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) > 500, output


def test_docs_page_renders_every_operation_in_a_browser_offline(base, doc):
    """Headless Chromium loads /docs with every request to another host
    refused, and Swagger UI lists each documented operation."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("FERRITE_TEST_CHROMIUM", "/usr/bin/chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    operations = sum(len(item) for item in doc["paths"].values())
    elsewhere = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        try:
            page = browser.new_page()

            def gate(route):
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", gate)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() == operations
            assert page.locator(".info .title").inner_text().startswith("ferrite")
            # Expanding an operation shows its documented request schema.
            page.locator("#operations-openai-createChatCompletion button").first.click()
            page.wait_for_selector("text=messages", timeout=10_000)
            assert errors == [], errors
        finally:
            browser.close()
    assert elsewhere == [], elsewhere
