"""The deployment files: Dockerfiles linted with hadolint, Kubernetes manifests
rendered with kustomize and validated against the Kubernetes schemas, and their
ports, probes and config keys checked against what the real binary serves."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

import pytest
import yaml

from conftest import ROOT, _free_port

BIN = pathlib.Path(sys.executable).parent
K8S_VERSION = "1.37.0"


def tool(name):
    path = BIN / name
    assert path.exists(), f"{name} is installed by tests/python/requirements.txt"
    return str(path)


def render(target):
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / target)], check=True, capture_output=True, text=True
    ).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name="ferrite"):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_dockerfiles_pass_hadolint():
    files = [str(ROOT / "docker" / f) for f in ("Dockerfile", "Dockerfile.cuda")]
    r = subprocess.run([tool("hadolint"), "--no-color", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("target", ["k8s/base", "k8s/overlays/gpu"])
def test_manifests_are_valid_kubernetes(target, tmp_path):
    text, docs = render(target)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(text)
    r = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, str(rendered)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace", "ConfigMap", "Secret", "Deployment", "Service",
        "HorizontalPodAutoscaler", "PodDisruptionBudget",
    } <= kinds
    if target.endswith("gpu"):
        limits = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def postgres_database(name):
    """A fresh database on the test PostgreSQL server (see scripts/postgres.sh)."""
    base = os.environ["FERRITE_TEST_POSTGRES_URL"]
    db = f"ferrite_py_{name}_{os.getpid()}"
    psql(base, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(base, f"CREATE DATABASE {db}")
    return base.rsplit("/", 1)[0] + "/" + db


def serve(env_overrides, config=None):
    """The real binary with the deployment's settings, on a free local port."""
    port = _free_port()
    data = tempfile.mkdtemp(prefix="ferrite-deploy-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRITE_")}
    env.update(env_overrides)
    model = os.environ.get("FERRITE_TEST_MODEL", str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    # Only where things live and where to listen differ from the deployment.
    env.update(
        FERRITE_HOST="127.0.0.1",
        FERRITE_PORT=str(port),
        FERRITE_DATA_DIR=data,
        FERRITE_MODEL__PATH=model,
    )
    binary = os.environ.get("FERRITE_BIN", str(ROOT / "target/release/ferrite"))
    args = [binary, "serve"] + (["--config", config] if config else [])
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}", data


def wait_ok(proc, url, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ferrite exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def stop(proc, data):
    proc.terminate()
    proc.wait(timeout=60)
    shutil.rmtree(data, ignore_errors=True)


def test_the_deployment_matches_what_the_binary_serves(tmp_path):
    _, docs = render("k8s/base")
    config_text = find(docs, "ConfigMap", "ferrite-config")["data"]["ferrite.toml"]
    config = tomllib.loads(config_text)
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "ferrite")
    service = find(docs, "Service")

    # One port everywhere: the config, the container, the Service, the probes.
    port = container["ports"][0]
    assert port["containerPort"] == config["port"] == 1234
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert all(p["port"] == port["name"] for p in probes.values())
    # Kubernetes waits for the preStop pause plus the server's drain.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + config["http"]["drain_timeout_secs"]
    # Read-only root: everything the server writes is a mounted volume.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert config["data_dir"] in mounts and "/models" in mounts
    assert pathlib.PurePath(config["model"]["path"]).parent.as_posix() == "/models"

    # The binary accepts this exact config (unknown keys are fatal) and the
    # deployment's environment, and answers every probe path.
    cfg = tmp_path / "ferrite.toml"
    cfg.write_text(config_text)
    env = {e["name"]: e.get("value", "test-key") for e in container["env"] if e["name"].startswith("FERRITE_")}
    env.pop("FERRITE_CONFIG")
    # The memory Secret points at a real PostgreSQL database here.
    assert config["memory"]["enabled"] is True and "FERRITE_MEMORY__URL" in env
    env["FERRITE_MEMORY__URL"] = postgres_database("deploy")
    # Budgets share that database, as the Deployment wires them.
    assert "FERRITE_BUDGETS__URL" in env
    env["FERRITE_BUDGETS__URL"] = env["FERRITE_MEMORY__URL"]
    proc, url, data = serve(env, config=str(cfg))
    try:
        wait_ok(proc, url + probes["startupProbe"]["path"])
        for p in probes.values():
            with urllib.request.urlopen(url + p["path"], timeout=5) as r:
                assert r.status == 200
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            assert r.status == 200
        # A chat is remembered in PostgreSQL.
        auth = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
        body = json.dumps({"messages": [{"role": "user", "content": "My dog is Rex."}], "max_tokens": 4})
        req = urllib.request.Request(url + "/v1/chat/completions", body.encode(), auth)
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.headers["x-ferrite-memory-used"] == "0"
        deadline = time.time() + 10
        while (stored := psql(env["FERRITE_MEMORY__URL"], "SELECT prompt FROM memories")) == "":
            assert time.time() < deadline, "nothing stored"
            time.sleep(0.2)
        assert stored == "My dog is Rex.", stored
        # And the caller's budget windows are kept there for every replica.
        assert psql(env["FERRITE_BUDGETS__URL"], "SELECT tenant FROM budget_windows") == "default"
    finally:
        stop(proc, data)


def test_the_docker_image_environment_is_valid_config():
    env = {}
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        line = line.strip().removeprefix("ENV ").rstrip("\\").strip()
        if line.startswith("FERRITE_"):
            key, _, value = line.partition("=")
            env[key] = value
    assert env["FERRITE_PORT"] == "1234" and env["FERRITE_DATA_DIR"] == "/data"
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert compose["services"]["ferrite"]["ports"] == ["1234:1234"]
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["ferrite:1234"]
    proc, url, data = serve(env)
    try:
        wait_ok(proc, url + "/ready")
    finally:
        stop(proc, data)
