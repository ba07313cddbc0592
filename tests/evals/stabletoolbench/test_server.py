"""The virtual API server over real HTTP: cache hits, misses filled by the simulator, not-cached errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from mor.evals.stabletoolbench import (
    ApiCatalog,
    ApiRoute,
    LlmEndpoint,
    LlmSimulator,
    ResponseCache,
    VirtualApiClient,
    VirtualApiServer,
)

from ._fakes import FakeChatServer, Reply

SEARCH = ApiRoute("Data", "theclique", "transfermarkt_search")


def test_a_cached_call_is_answered_from_the_cache(tmp_path: Path, messi_catalog: ApiCatalog) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(SEARCH, {"name": "messi"}, {"error": "", "response": {"Players": [{"name": "Lionel Messi"}]}})
    with VirtualApiServer(cache, catalog=messi_catalog) as server, VirtualApiClient(server.url) as client:
        assert server.url.startswith("http://127.0.0.1:")
        observation = client.call(SEARCH, {"name": "messi"})
        assert (observation.error, observation.source) == ("", "cache")
        assert observation.response == {"Players": [{"name": "Lionel Messi"}]}
        assert observation.ok
        assert observation.text() == '{"error": "", "response": {"Players": [{"name": "Lionel Messi"}]}}'
        assert server.stats.to_dict() == {"cache_hits": 1, "simulated": 0, "not_cached": 0, "errors": 0}


def test_a_miss_without_a_simulator_is_a_clear_not_cached_error(tmp_path: Path, messi_catalog: ApiCatalog) -> None:
    with VirtualApiServer(tmp_path, catalog=messi_catalog) as server, VirtualApiClient(server.url) as client:
        observation = client.call(SEARCH, {"name": "messi"})
        assert not observation.ok and observation.source == "none" and observation.response == ""
        assert observation.error.startswith(
            "not cached: the response cache holds no response of Data/theclique/transfermarkt_search"
        )
        assert "no API simulator is configured" in observation.error
        assert server.stats.not_cached == 1
    assert ResponseCache(tmp_path).count() == 0


def test_a_miss_is_simulated_once_then_served_from_the_cache(
    tmp_path: Path, messi_catalog: ApiCatalog, fake_llm: Callable[[Reply], FakeChatServer]
) -> None:
    llm = fake_llm(lambda body: json.dumps({"error": "", "response": {"Players": [{"name": "Lionel Messi"}]}}))
    simulator = LlmSimulator(LlmEndpoint(llm.url, "simulator-model"))
    cache = ResponseCache(tmp_path)
    cache.put(SEARCH, {"name": "neymar"}, {"error": "", "response": {"Players": [{"name": "Neymar"}]}})
    with VirtualApiServer(cache, catalog=messi_catalog, simulator=simulator) as server:
        with VirtualApiClient(server.url) as client:
            first = client.call(SEARCH, {"name": "messi"})
            second = client.call(SEARCH, {"name": "messi"})
    assert (first.source, second.source) == ("simulator", "cache")
    assert first.response == second.response == {"Players": [{"name": "Lionel Messi"}]}
    assert len(llm.requests) == 1
    prompt = llm.requests[0]["messages"][1]["content"]
    assert '"description": "Search by name"' in prompt and '"template_response": {"Clubs"' in prompt
    assert '[{"arguments": {"name": "neymar"}' in prompt  # the cached call of the same API as an example
    assert prompt.endswith('{"name": "messi"}')
    assert cache.get(SEARCH, {"name": "messi"}) == {"error": "", "response": {"Players": [{"name": "Lionel Messi"}]}}
    assert server.stats.to_dict() == {"cache_hits": 1, "simulated": 1, "not_cached": 0, "errors": 0}


def test_simulator_failures_are_error_observations_and_never_cached(
    tmp_path: Path, messi_catalog: ApiCatalog, fake_llm: Callable[[Reply], FakeChatServer]
) -> None:
    not_json = fake_llm(lambda body: "sorry")
    down = fake_llm(lambda body: "unused")
    down.stop()
    for llm, expected in ((not_json, "the API simulator gave no JSON response"), (down, "simulator unavailable")):
        simulator = LlmSimulator(LlmEndpoint(llm.url, "m", timeout_s=2), attempts=2)
        with VirtualApiServer(tmp_path, catalog=messi_catalog, simulator=simulator) as server:
            observation = VirtualApiClient(server.url).call(SEARCH, {"name": "messi"})
        assert observation.error.startswith(expected), observation.error
        assert ResponseCache(tmp_path).count() == 0


def test_an_api_outside_the_catalog_cannot_be_simulated(
    tmp_path: Path, fake_llm: Callable[[Reply], FakeChatServer]
) -> None:
    llm = fake_llm(lambda body: "{}")
    simulator = LlmSimulator(LlmEndpoint(llm.url, "m"))
    with VirtualApiServer(tmp_path, simulator=simulator) as server:
        observation = VirtualApiClient(server.url).call(SEARCH, {})
    assert observation.error.startswith("unknown API: Data/theclique/transfermarkt_search is not in the server's")
    assert llm.requests == []


def test_the_benchmark_request_shape_is_served_too(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put(SEARCH, {"name": "messi"}, {"error": "", "response": "found"})
    with VirtualApiServer(tmp_path) as server:
        body = {
            "category": "Data",
            "tool_name": "theclique",
            "api_name": "transfermarkt_search",
            "tool_input": '{"name": "messi"}',
            "strip": "",
            "toolbench_key": "",
        }
        assert httpx.post(f"{server.url}/virtual", json=body).json() == {"error": "", "response": "found"}
        body["tool_input"] = "not json"
        reply = httpx.post(f"{server.url}/virtual", json=body).json()
        assert reply["error"].startswith("Tool input parse error")


def test_malformed_requests_get_400_and_health_reports(tmp_path: Path, messi_catalog: ApiCatalog) -> None:
    with VirtualApiServer(tmp_path, catalog=messi_catalog) as server:
        missing = httpx.post(f"{server.url}/v1/call", json={"category": "Data"})
        assert missing.status_code == 400
        assert missing.json()["error"].startswith("request body: missing or non-string tool_name, api_name")
        assert httpx.post(f"{server.url}/v1/call", content=b"{oops").status_code == 400
        assert httpx.post(f"{server.url}/nowhere", json={}).status_code == 404
        bad_arguments = httpx.post(
            f"{server.url}/v1/call",
            json={"category": "Data", "tool_name": "theclique", "api_name": "x", "arguments": [1]},
        ).json()
        assert bad_arguments["error"] == "arguments: expected a JSON object, got list"
        health = VirtualApiClient(server.url).health()
        assert health == {
            "status": "ok",
            "simulator": False,
            "apis": 10,
            "cached": 0,
            "stats": {"cache_hits": 0, "simulated": 0, "not_cached": 0, "errors": 0},
        }


def test_a_client_of_a_dead_server_gets_error_observations(tmp_path: Path) -> None:
    server = VirtualApiServer(tmp_path).start()
    url = server.url
    server.stop()
    observation = VirtualApiClient(url, timeout_s=2).call(SEARCH, {})
    assert observation.error.startswith(f"virtual API server at {url} unreachable")
    with pytest.raises(httpx.HTTPError):
        VirtualApiClient(url, timeout_s=2).health()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_server_runs_as_a_service(tmp_path: Path, benchmarks_dir: Path) -> None:
    ResponseCache(tmp_path).put(SEARCH, {"name": "messi"}, {"error": "", "response": "from the service"})
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "mor.evals.stabletoolbench.server",
        "--data-dir",
        str(benchmarks_dir),
        "--cache-dir",
        str(tmp_path),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = VirtualApiClient(f"http://127.0.0.1:{port}", timeout_s=5)
        deadline = time.monotonic() + 60
        while True:
            try:
                health = client.health()
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert (health["apis"], health["simulator"], health["cached"]) == (2481, False, 1)
        assert client.call(SEARCH, {"name": "messi"}).response == "from the service"
    finally:
        process.terminate()
        process.wait(timeout=10)
