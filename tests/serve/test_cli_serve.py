"""`mor serve`: refuses bad input before touching Ray; deploys on the embedded Ray, prints the base URL and a
generated key, answers the official client, and removes its application on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from mor.cli.main import app
from mor.settings import Settings

from .conftest import ServedAgent


@pytest.mark.parametrize(
    "arguments,fragment",
    [
        (["/no/such/agent"], "is neither a models:/ or runs:/ URI nor an existing directory"),
        (["models:/x@a", "--api-key", "short"], "api key #1: got 5 characters"),
        (["models:/x@a", "--batching", "sometimes"], "batching"),
        (["models:/x@a", "--route-prefix", "cli"], "--route-prefix: got 'cli', must start with '/'"),
        (["models:/x@a", "--address", "http://127.0.0.1:8265"], "--address: got the dashboard URL"),
    ],
)
def test_bad_input_exits_2_without_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], fragment: str
) -> None:
    monkeypatch.setenv("MOR_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    for key in ("MOR_API_KEYS", "RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(app, ["serve", *arguments])
    assert result.exit_code == 2, result.output
    assert fragment in " ".join(result.output.split()), result.output
    assert not (tmp_path / "ray").exists()  # no cluster was started


@pytest.mark.slow
def test_serve_until_ctrl_c(served: ServedAgent, ray_settings: Settings) -> None:
    from ray import serve

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MOR_API_KEYS", "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")
    }
    env.update({"MOR_HOME": str(ray_settings.home), "COLUMNS": "250", "PYTHONUNBUFFERED": "1"})
    command = [
        sys.executable,
        "-m",
        "mor.cli.main",
        "serve",
        str(served.directory),
        "--port",
        str(served.port),
        "--route-prefix",
        "/cli",
        "--app-name",
        "mor-cli-test",
        "--replica-cpus",
        "0.5",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("Press Ctrl-C" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        output = "".join(lines)
        base_url = re.search(r"Base URL: (\S+)", output).group(1)
        key = re.search(r"API key \(generated, none was configured\): (\S+)", output).group(1)
        assert base_url == f"http://127.0.0.1:{served.port}/cli/v1" and key.startswith("mor-")
        assert f"as model {served.model}" in output
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
        assert [m.id for m in client.models.list()] == [served.model]
        reply = client.chat.completions.create(
            model=served.model, messages=[{"role": "user", "content": "Hello!"}], tool_choice="none", max_tokens=8
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key=served.key, max_retries=0).models.list()  # other app's key
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    assert "Stopped." in "".join(lines)
    assert "mor-cli-test" not in serve.status().applications
    assert "mor-serve-test" in serve.status().applications  # the other application is untouched
