"""OpenAI's Codex CLI (the npm package @openai/codex, fetched by `make test`)
against the real server as a Responses API provider: one `codex exec` turn,
with its own tools (functions, a namespace, web search) in the request."""
import json
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CODEX = os.environ.get("FERRITE_TEST_CODEX", str(ROOT / ".tools/node_modules/.bin/codex"))


def test_codex_answers_through_the_responses_api(base_url):
    home = pathlib.Path(tempfile.mkdtemp(prefix="ferrite-codex-"))
    (home / "config.toml").write_text(
        'model = "smollm2-135m-instruct"\nmodel_provider = "ferrite"\n'
        f'[model_providers.ferrite]\nname = "ferrite"\nbase_url = "{base_url}"\nwire_api = "responses"\n'
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home)}
    run = subprocess.run(
        [CODEX, "exec", "--json", "--skip-git-repo-check", "Say hello."],
        env=env, cwd=home, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    messages = [e["item"]["text"] for e in events
                if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"]
    assert messages and messages[0].strip(), run.stdout[-2000:]
    done = [e for e in events if e["type"] == "turn.completed"]
    assert done and done[0]["usage"]["input_tokens"] > 0 and done[0]["usage"]["output_tokens"] > 0
