"""The concrete targets: the in-process agent (a scripted role generator behind the real gate) and the OpenAI
client against a real local HTTP server that answers like our served agent or a third-party API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mor.agent import Agent, AgentConfig
from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES
from mor.evals.target import ChatTarget, TargetCall
from mor.evals.targets import AgentTarget, GateRoles, OpenAITarget, TargetError, gate_roles_of, write_untrained_agent
from mor_testing import benchmarks_dir

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    texts = ["What is the weather in Paris? I will look it up. Next: executor", '{"name": "get_weather"}'] * 8
    return train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=320)


class Scripted:
    """A role generator that writes a fixed text per role (a model whose policy the test chooses)."""

    def __init__(self, tokenizer: Any, outputs: dict[str, str]) -> None:
        self.tokenizer = tokenizer
        self.outputs = outputs

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        ids = self.tokenizer(self.outputs[role], add_special_tokens=False)["input_ids"]
        return (ids + list(stop_ids))[:max_new_tokens]


def _agent_target(tokenizer: Any, **outputs: str) -> AgentTarget:
    return AgentTarget(Agent(Scripted(tokenizer, outputs), tokenizer, config=AgentConfig(max_steps=4)), name="scripted")


def test_agent_target_returns_the_executors_calls_with_the_reasoners_thought(tokenizer: Any) -> None:
    target = _agent_target(
        tokenizer,
        reasoner="I will look it up. Next: executor",
        executor='{"name": "get_weather", "arguments": {"city": "Paris"}}',
    )
    assert isinstance(target, ChatTarget)
    reply = target.respond(QUESTION, [WEATHER])
    assert reply.calls == [TargetCall("get_weather", {"city": "Paris"}, None, "call_1")]
    assert reply.thought == "I will look it up."
    assert reply.content is None and reply.failure is None and reply.failing_role is None
    assert json.loads(reply.raw or "") == [{"get_weather": {"city": "Paris"}}]
    assert reply.latency_s > 0
    assert gate_roles_of(target) == GateRoles()


def test_agent_target_answers_through_the_summarizer(tokenizer: Any) -> None:
    target = _agent_target(tokenizer, reasoner="Nothing to call. Next: summarizer", summarizer="It is sunny.")
    reply = target.respond(QUESTION, [WEATHER])
    assert reply.calls == [] and reply.content == "It is sunny." and reply.raw == "It is sunny."
    assert reply.thought == "Nothing to call." and reply.failing_role is None


def test_agent_target_names_the_role_whose_output_was_unusable(tokenizer: Any) -> None:
    bad_call = _agent_target(tokenizer, reasoner="Call it. Next: executor", executor='{"name": "get_weather", "argu')
    reply = bad_call.respond(QUESTION, [WEATHER])
    assert reply.failing_role == "executor" and "not valid JSON" in (reply.failure or "")
    assert reply.raw == '{"name": "get_weather", "argu' and reply.calls == []

    no_role = _agent_target(tokenizer, reasoner="I am not sure what to do")
    reply = no_role.respond(QUESTION, [WEATHER])
    assert reply.failing_role == "reasoner" and "Next: <role>" in (reply.failure or "")


def test_agent_target_tool_choice(tokenizer: Any) -> None:
    target = _agent_target(
        tokenizer,
        reasoner="Call it. Next: executor",
        executor='{"name": "get_weather", "arguments": {"city": "Paris"}}',
    )
    reply = target.respond(QUESTION, [WEATHER], tool_choice="none")
    assert reply.calls == [] and reply.failing_role == "reasoner" and "tool_choice='none'" in (reply.failure or "")
    with pytest.raises(ValueError, match="tool_choice: got 'any'"):
        target.respond(QUESTION, [WEATHER], tool_choice="any")


def test_an_untrained_agent_directory_loads_and_fails_with_a_role(tmp_path: Path) -> None:
    texts = ["<|user|> What is the weather in Paris? <|reasoner|> look it up Next: executor <|end|>"] * 10
    tiny = {
        "rank": 2,
        "target_modules": ["q_proj", "v_proj"],
        "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
    }
    agent_dir = write_untrained_agent(tmp_path / "agent", texts=texts, cache_dir=tmp_path / "cache", mor_config=tiny)
    assert agent_dir.roles == list(DEFAULT_ROLES) and agent_dir.base_weights_dir is not None
    budget = AgentConfig(max_new_tokens={}, default_max_new_tokens=4)
    target = AgentTarget.from_agent_dir(agent_dir, config=budget, name="untrained")
    reply = target.respond(QUESTION, [WEATHER])
    # Random weights never write the end marker within 4 tokens: the reasoner's turn is unusable.
    assert reply.failing_role == "reasoner" and reply.failure == "no end marker within 4 tokens"
    default = AgentTarget.from_agent_dir(agent_dir)
    assert default.agent.config.max_context_tokens == 1024  # the builtin base's context length
    assert default.name == "agent"


# ---------------------------------------------------------------- a real HTTP server speaking the OpenAI API


class _Server:
    """Answers each request with the next scripted (status, body) and keeps the requests it got."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[str, dict[str, Any] | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict[str, Any] | None) -> None:
                server.requests.append((f"{self.command} {self.path}", body))
                status, payload = server.replies.pop(0)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", "0"))
                self._answer(json.loads(self.rfile.read(length)))

            def do_GET(self) -> None:  # noqa: N802
                self._answer(None)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        **extra,
    }


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_a", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_openai_target_against_our_served_agent(server: _Server) -> None:
    mor = {"decision": "tool_calls", "role_tokens": {"reasoner": 6, "executor": 9}}
    server.replies.append(
        (
            200,
            _completion(
                {
                    "content": None,
                    "reasoning_content": "Look it up.",
                    "tool_calls": [_call("get_weather", '{"city": "Paris"}')],
                },
                "tool_calls",
                mor=mor,
            ),
        )
    )
    target = OpenAITarget(server.url, "key-1", "mor-agent")
    assert gate_roles_of(target) is None  # not known before the first reply
    reply = target.respond(QUESTION, [WEATHER])
    assert reply.calls == [TargetCall("get_weather", {"city": "Paris"}, None, "call_a")]
    assert reply.thought == "Look it up." and reply.content is None and reply.failure is None
    assert reply.usage == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert gate_roles_of(target) == GateRoles()  # detected from the `mor` field
    route, body = server.requests[0]
    assert route == "POST /v1/chat/completions"
    assert body is not None and body["model"] == "mor-agent" and body["tools"] == [WEATHER]
    assert body["tool_choice"] == "auto" and body["temperature"] == 0.0 and body["messages"] == QUESTION


def test_openai_target_attributes_served_agent_failures_to_roles(server: _Server) -> None:
    server.replies.append(
        (
            200,
            _completion(
                {"content": "Look it up.", "tool_calls": [_call("get_weather", '{"ci')]},
                "tool_calls",
                mor={"decision": "tool_calls", "role_tokens": {}},
            ),
        )
    )
    length_mor = {"decision": "length", "role_tokens": {"reasoner": 3, "executor": 40}}
    server.replies.append((200, _completion({"content": None, "reasoning_content": "Look"}, "length", mor=length_mor)))
    error = {
        "error": {
            "message": "the reasoner's output could not be parsed: no 'Next: <role>'",
            "type": "server_error",
            "param": None,
            "code": "generation_failed",
        }
    }
    server.replies.extend([(500, error)] * 3)  # the client retries a 500 twice
    target = OpenAITarget(server.url, None, "mor-agent", max_retries=2)
    bad_json = target.respond(QUESTION, [WEATHER])
    assert bad_json.failing_role == "executor" and "not JSON" in (bad_json.failure or "")
    assert bad_json.calls[0].raw_arguments == '{"ci' and bad_json.thought == "Look it up."
    length = target.respond(QUESTION, [WEATHER])
    assert length.failing_role == "executor" and "finish_reason=length" in (length.failure or "")
    failed = target.respond(QUESTION, [WEATHER])
    assert failed.failing_role == "reasoner" and failed.failure is not None and failed.failure.startswith("HTTP 500")
    assert len(server.requests) == 5


def test_openai_target_against_a_third_party_server(server: _Server) -> None:
    server.replies.append(
        (200, {"object": "list", "data": [{"id": "gpt-x", "object": "model", "created": 0, "owned_by": "me"}]})
    )
    server.replies.append((200, _completion({"content": "I cannot check the weather."})))
    server.replies.append(
        (200, _completion({"content": None, "tool_calls": [_call("get_weather", "[1]")]}, "tool_calls"))
    )
    target = OpenAITarget(server.url, "sk-test")
    reply = target.respond(QUESTION, [])
    assert target.model == "gpt-x" and server.requests[0][0] == "GET /v1/models"
    assert reply.content == "I cannot check the weather." and reply.calls == []
    assert "tools" not in (server.requests[1][1] or {})
    odd = target.respond(QUESTION, [WEATHER], tool_choice="required")
    assert odd.failure == "arguments of get_weather must be a JSON object, got list"
    assert odd.failing_role is None and gate_roles_of(target) is None  # not a role-gated model
    assert (server.requests[2][1] or {})["tool_choice"] == "required"


def test_openai_target_raises_when_the_target_itself_is_unusable(server: _Server) -> None:
    server.replies.append((401, {"error": {"message": "bad key", "type": "auth", "code": "invalid_api_key"}}))
    with pytest.raises(TargetError, match="HTTP 401 for model 'm': bad key; check the URL, the API key"):
        OpenAITarget(server.url, "wrong", "m").respond(QUESTION, [WEATHER])
    closed = server.url.replace(str(server.httpd.server_address[1]), "9")  # the discard port: nothing listens
    with pytest.raises(TargetError, match="unreachable"):
        OpenAITarget(closed, None, "m", max_retries=0, timeout_s=2).respond(QUESTION, [])
    with pytest.raises(ValueError, match="base_url: got 'localhost:8000'"):
        OpenAITarget("localhost:8000")


# ---------------------------------------------------------------- our served agent, over real HTTP


@pytest.fixture(scope="module")
def served_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real serving app (FastAPI + engine, no Ray) over an untrained agent, on a loopback port."""
    import socket

    import uvicorn

    from mor.agent import load_agent_model
    from mor.serve import KeySet, ServeArgs, build_api, build_runtime, digest_key

    root = tmp_path_factory.mktemp("served")
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    tiny = {
        "rank": 2,
        "target_modules": ["q_proj", "v_proj"],
        "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
    }
    agent = write_untrained_agent(root / "agent", texts=texts, cache_dir=root / "cache", mor_config=tiny)
    model, tokenizer = load_agent_model(agent)
    args = ServeArgs(
        model_uri=str(agent.root),
        api_key_digests=[digest_key("served-key-0123456789")],
        role_max_tokens={"reasoner": 12, "executor": 48, "summarizer": 8},
        max_steps=2,
    )
    runtime = build_runtime(model, tokenizer, args, name="tiny-agent")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            build_api(runtime, KeySet.from_keys(["served-key-0123456789"])),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.engine.close()


def test_openai_target_against_the_real_served_agent(served_agent: str) -> None:
    """Our served agent's replies carry the `mor` field: the target knows it is role-gated, and a BFCL item run
    through it gets a verdict and, when failed, a role."""
    from mor.evals.bfcl import load_items
    from mor.evals.bfcl_run import run_bfcl_item

    target = OpenAITarget(served_agent, "served-key-0123456789")
    reply = target.respond(QUESTION, [WEATHER], tool_choice="required")
    assert target.model == "tiny-agent" and gate_roles_of(target) == GateRoles()
    # Constrained decoding: an untrained model still returns a well-formed call, or runs out of the executor's
    # token budget inside one (finish_reason=length), which the target charges to the executor.
    if reply.calls:
        assert [call.name for call in reply.calls] == ["get_weather"] and reply.failure is None, reply
        assert isinstance(reply.calls[0].arguments.get("city"), str)
    else:
        assert reply.failing_role == "executor" and "finish_reason=length" in (reply.failure or ""), reply
    assert reply.usage["completion_tokens"] > 0 and reply.usage["prompt_tokens"] > 0

    benchmarks = benchmarks_dir("bfcl")  # skips outside CI when absent; fails under CI=true
    item = load_items("simple_python", benchmarks)[0]
    run = run_bfcl_item(target, item)
    assert run.passed or run.failing_role in ("reasoner", "executor")
    if not run.passed:
        expected = "reasoner" if run.reason == "no_call" else "executor"
        assert run.failing_role == expected, (run.reason, run.message)
    with pytest.raises(TargetError, match="HTTP 401"):
        OpenAITarget(served_agent, "wrong-key", "tiny-agent").respond(QUESTION, [WEATHER])
