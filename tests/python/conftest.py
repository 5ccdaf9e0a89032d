"""Starts the real ferrite binary with the real default model for the session."""
import os
import pathlib
import random
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EMBED = os.environ.get("FERRITE_TEST_EMBED", str(ROOT / "models/all-MiniLM-L6-v2.F16.gguf"))
EMBED_HF = os.environ.get("FERRITE_TEST_EMBED_HF", str(ROOT / "models/all-MiniLM-L6-v2"))


# Each server `_serve` started, by the URL it yields (for tests that watch
# the process: its memory, its exit).
PROCESSES = {}


def _free_port() -> int:
    """A free port below the kernel's ephemeral range (32768 and up), which
    a client's outgoing connection could take before the server binds it."""
    for port in random.sample(range(12000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 12000 and 32000")


def _serve(extra_env=None, args=(), model=None):
    """Starts ferrite (default config plus `extra_env` and flags `args`, on
    `model` or the default model); yields its /v1 URL."""
    binary = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
    model = model or os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRITE_")}
    env.update(extra_env or {})
    # The data dir of the user running the tests stays untouched.
    env.setdefault("FERRITE_DATA_DIR", tempfile.mkdtemp(prefix="ferrite-pytest-"))
    # Models in the user's own models folder must not change what tests see.
    env.setdefault("FERRITE_REGISTRY__SCAN", "false")
    # The embedding model beside the chat model, as `make serve` offers it.
    env.setdefault("FERRITE_REGISTRY__EMBEDDING_MODEL", EMBED)
    # A file, not a pipe: nobody reads the log while tests run, and a full
    # pipe would block the server's next log line.
    log = tempfile.TemporaryFile(prefix="ferrite-pytest-log-")
    proc = subprocess.Popen(
        [binary, "serve", "--model", model, "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"ferrite exited: {log.read().decode()}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("ferrite did not become ready")
    PROCESSES[f"{url}/v1"] = proc
    # Also when a test closes the generator itself (GeneratorExit at the yield).
    try:
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def base_url():
    """A server with the default configuration, as `make serve` runs it."""
    yield from _serve()


@pytest.fixture(scope="module")
def budget_url():
    """A server allowing two requests a minute."""
    yield from _serve({"FERRITE_BUDGETS__REQUESTS_PER_MINUTE": "2"})


@pytest.fixture(scope="module")
def auth_url():
    """A server that requires an API key."""
    yield from _serve({"FERRITE_AUTH__API_KEY": "sk-ferrite-test"})


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory):
    """A server offering a second model (the Q8_0 copy) and an `auto` router."""
    q8 = os.environ.get("FERRITE_TEST_MODEL_Q8", str(ROOT / "models/SmolLM2-135M-Instruct.Q8_0.gguf"))
    config = tmp_path_factory.mktemp("registry") / "ferrite.toml"
    config.write_text(
        "[registry]\nscan = false\nmax_loaded_models = 1\n"
        f'[[registry.models]]\nid = "smol-q8"\npath = "{q8}"\n'
        '[[routers]]\nname = "auto"\ndefault_model = "smollm2-135m-instruct"\n'
        '[[routers.routes]]\nname = "code"\nmodel = "smol-q8"\nkeywords = ["python"]\n'
    )
    yield from _serve({"FERRITE_CONFIG": str(config)})
