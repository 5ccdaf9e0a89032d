"""Claude Code itself (the npm package @anthropic-ai/claude-code, fetched by
`make test`) against the real server, with ANTHROPIC_BASE_URL as its docs
say: one non-interactive turn through /v1/messages."""
import json
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLAUDE = os.environ.get("FERRITE_TEST_CLAUDE", str(ROOT / ".tools/node_modules/.bin/claude"))


def test_claude_code_answers_through_the_messages_api(base_url):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": tempfile.mkdtemp(prefix="ferrite-claude-"),
        "ANTHROPIC_BASE_URL": base_url.removesuffix("/v1"),
        "ANTHROPIC_API_KEY": "sk-unused",
        # Offline: no telemetry, update checks or other traffic.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "1024",
    }
    # No tools and a short system prompt: its full agent prompt is past
    # this 135M model's 8192-token context.
    run = subprocess.run(
        [CLAUDE, "-p", "Reply with one word: hello.", "--model", "smollm2-135m-instruct",
         "--tools", "", "--system-prompt", "You are terse.", "--output-format", "json"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["subtype"] == "success" and not result["is_error"], result
    assert result["result"].strip(), result
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
