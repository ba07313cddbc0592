"""`mor serve`: refuses bad input before touching Ray; deploys on the embedded Ray, prints the base URL and a
generated key, answers the official client, and removes its application on Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from mor.cli.main import app
from mor.settings import Settings

from .conftest import ServedAgent
from .processes import MorServe


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

    server = MorServe(
        ray_settings.home,
        str(served.directory),
        "--port",
        str(served.port),
        "--route-prefix",
        "/cli",
        "--app-name",
        "mor-cli-test",
        "--replica-cpus",
        "0.5",
    )
    try:
        base_url, key = server.wait_ready()
        assert base_url == f"http://127.0.0.1:{served.port}/cli/v1" and key.startswith("mor-")
        assert f"as model {served.model}" in server.output
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
        assert [m.id for m in client.models.list()] == [served.model]
        reply = client.chat.completions.create(
            model=served.model, messages=[{"role": "user", "content": "Hello!"}], tool_choice="none", max_tokens=8
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key=served.key, max_retries=0).models.list()  # other app's key
        assert server.stop(signal.SIGINT) == 0, server.output
    finally:
        server.kill()
    output = server.output
    assert (
        f"Removed 'mor-cli-test'; Ray Serve keeps listening on 127.0.0.1:{served.port} for 'mor-serve-test'" in output
    )
    assert output.rstrip().endswith("Stopped.")
    assert "mor-cli-test" not in serve.status().applications
    assert "mor-serve-test" in serve.status().applications  # the other application is untouched
