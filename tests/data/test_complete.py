"""Role completion: the rule completer on the shared glaive sample, and the LLM completer against a local
OpenAI-compatible server (a real HTTP server on 127.0.0.1): prompts, retries, errors, the rate limit and the cache."""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mor.data import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn, render_text
from mor.data.complete import (
    PROMPT_VERSION,
    CompletionResult,
    LLMCompleter,
    LLMCompleterConfig,
    RuleCompleter,
    RuleCompleterConfig,
    build_completer,
    complete,
    complete_one,
    load_prompt,
)
from mor.data.readers import read
from mor_testing import shared_dataset

WEATHER = Tool(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _weather(city: str, *, answered: bool = True) -> Trajectory:
    """A one-call trajectory whose first thought is missing (the hand-over to the summarizer has one), or, with
    `answered=False`, one that stops after the observation."""
    turns = [
        Turn(role="user", content=f"What is the weather in {city}?"),
        Turn(role="reasoner", next_role="executor"),
        Turn(role="executor", calls=[ToolCall(name="get_weather", arguments={"city": city}, id="call_1")]),
        Turn(role="observation", content=json.dumps({"city": city, "temperature_c": 21}), call_id="call_1"),
    ]
    missing = ["thought"]
    if answered:
        turns += [
            Turn(role="reasoner", thought="I have the weather.", next_role="summarizer"),
            Turn(role="summarizer", content=f"It is 21 °C in {city}."),
        ]
    else:
        missing.append("answer")
    return Trajectory(
        id=f"weather-{city}", tools=[WEATHER], turns=turns, metadata=TrajectoryMeta(source="test", missing=missing)
    )


# --------------------------------------------------------------------------------------------------------------------
# The rule completer


@pytest.fixture(scope="module")
def glaive() -> list[Trajectory]:
    out = list(read("sharegpt", shared_dataset("glaive-function-calling-v2")))
    assert all(isinstance(t, Trajectory) for t in out)
    return [t for t in out if isinstance(t, Trajectory)]


def test_the_rule_completer_fills_every_thought_of_the_glaive_sample(glaive: list[Trajectory]) -> None:
    empty = {(t.id, i) for t in glaive for i, turn in enumerate(t.turns) if turn.next_role and turn.thought is None}
    assert len(empty) > len(glaive)  # the format has no thoughts at all

    results = list(complete(glaive, RuleCompleter()))

    assert [r.id for r in results] == [t.id for t in glaive]
    assert all(r.ok for r in results)
    filled = {(r.id, int(key.split()[1])) for r in results for key in r.completed}
    assert filled == empty
    for result in results:
        trajectory = result.trajectory
        assert all(turn.thought for turn in trajectory.turns if turn.next_role is not None)
        assert "thought" not in trajectory.metadata.missing
        assert trajectory.metadata.completed == result.completed
        assert set(result.completed.values()) == {"rule"}
        assert all(key.endswith(" thought") for key in result.completed)
        text = render_text(trajectory)
        assert all(f"{turn.thought} Next: {turn.next_role}" in text for turn in trajectory.turns if turn.next_role)

    first = results[0].trajectory
    assert first.turns[4].thought == (
        'I will call search_recipes with ingredients=["chicken", "bell peppers", "rice"] to answer the request.'
    )
    assert first.turns[7].thought == "I have the results of search_recipes, so I will answer the user now."
    assert first.turns[1].thought == "No tool call is needed for this message, so I will answer directly."
    # The rest of the trajectory is untouched.
    assert [t.model_copy(update={"thought": None}) for t in first.turns] == glaive[0].turns
    assert glaive[0].turns[4].thought is None  # the input is not modified


def test_the_rule_completer_answers_a_trajectory_that_stops_after_its_observations(glaive: list[Trajectory]) -> None:
    source = glaive[0]
    cut = source.model_copy(
        update={
            "turns": source.turns[:7],  # ... executor, observation
            "metadata": TrajectoryMeta(source="sharegpt", missing=["thought", "answer"], origin="x"),
        }
    )
    [result] = complete([cut], RuleCompleter(RuleCompleterConfig(max_observation_chars=80)))

    assert result.ok
    done = result.trajectory
    assert [t.role for t in done.turns[7:]] == ["reasoner", "summarizer"]
    assert done.turns[7].next_role == "summarizer"
    assert done.turns[7].thought == "I have the results of search_recipes, so I will answer the user now."
    answer = done.turns[8].content or ""
    assert answer.startswith('search_recipes returned: {"recipes": [{"name": "Chicken and Bell Pepper Stir Fry",')
    assert answer.endswith("…") and len(answer) <= len("search_recipes returned: ") + 80
    assert done.answer == answer
    assert result.completed == {
        "turn 8 answer": "rule",
        "turn 1 thought": "rule",
        "turn 4 thought": "rule",
        "turn 7 thought": "rule",
    }
    assert done.metadata.missing == []
    assert done.metadata.origin == "x"  # other metadata kept
    render_text(done)


def test_only_the_parts_asked_are_filled() -> None:
    [answer_only] = complete([_weather("Oslo", answered=False)], RuleCompleter(), parts=("answer",))
    turns = answer_only.trajectory.turns
    assert turns[-1].content == 'get_weather returned: {"city": "Oslo", "temperature_c": 21}'
    assert [turn.thought for turn in turns if turn.next_role] == [None, None]
    assert answer_only.completed == {"turn 5 answer": "rule"}
    assert answer_only.trajectory.metadata.missing == ["thought"]

    [thought_only] = complete([_weather("Oslo", answered=False)], RuleCompleter(), parts=["thought"])
    assert thought_only.completed == {"turn 1 thought": "rule"}
    assert thought_only.trajectory.turns[1].thought == "I will call get_weather with city=Oslo to answer the request."
    assert thought_only.trajectory.metadata.missing == ["answer"]

    with pytest.raises(ValueError, match=r"parts: got \['thoughts'\]"):
        list(complete([], RuleCompleter(), parts=("thoughts",)))


def test_a_trajectory_without_anything_to_answer_from_is_left_as_it_is() -> None:
    trajectory = _weather("Oslo", answered=False)
    calls_only = trajectory.model_copy(
        update={
            "turns": trajectory.turns[:3],
            "metadata": TrajectoryMeta(source="test", missing=["observation", "answer"]),
        }
    )
    result = complete_one(calls_only, RuleCompleter(), parts=("answer",))
    assert result.ok and result.completed == {}
    assert result.trajectory == calls_only


def test_completers_are_picklable_and_built_from_configs(tmp_path: Path) -> None:
    rule = build_completer(RuleCompleterConfig(max_value_chars=10))
    assert isinstance(rule, RuleCompleter)
    copy = pickle.loads(pickle.dumps(rule))
    assert copy.config == rule.config
    [result] = complete([_weather("Kristiansand-by-the-sea")], copy)
    assert result.trajectory.turns[1].thought == "I will call get_weather with city=Kristians… to answer the request."

    config = LLMCompleterConfig(base_url="http://127.0.0.1:9/v1", model="m", cache_dir=str(tmp_path))
    llm = build_completer(config)
    assert isinstance(llm, LLMCompleter)
    revived = pickle.loads(pickle.dumps(llm))
    assert isinstance(revived, LLMCompleter) and revived.config == config and revived.mark == "llm:m"

    with pytest.raises(ValueError, match="base_url: got 'localhost:8000'.*max_attempts: got 0"):
        LLMCompleterConfig(base_url="localhost:8000", model="m", max_attempts=0)


def test_the_packaged_prompts_load_and_a_prompts_dir_is_checked(tmp_path: Path) -> None:
    assert set(load_prompt("thought").get_identifiers()) == {"tools", "conversation", "next_action"}
    assert set(load_prompt("answer").get_identifiers()) == {"tools", "conversation", "observations"}

    (tmp_path / "thought.txt").write_text("Tools: $tools\nSo far: $conversation\nThen: $next_action\nCost: $$1\n")
    assert "Then: X" in load_prompt("thought", tmp_path).substitute(tools="", conversation="", next_action="X")
    (tmp_path / "answer.txt").write_text("$conversation $observation")
    with pytest.raises(ValueError, match=r"answer.txt: placeholders \['conversation', 'observation'\], must be"):
        load_prompt("answer", tmp_path)
    with pytest.raises(FileNotFoundError, match="it needs thought.txt and answer.txt"):
        load_prompt("answer", tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------------------------
# A local OpenAI-compatible server


@dataclass
class Seen:
    at: float  # time.monotonic() when the server read the request
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        return str(self.body["messages"][-1]["content"])


@dataclass
class FakeEndpoint:
    """Serves /v1/chat/completions: scripted failures first, then a 503 forever for prompts holding a poison word,
    else a 200 whose text is derived from the prompt (`Thought: thought <digest>` or `answer <digest>`)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    poison: dict[str, int] = field(default_factory=dict)  # word in the prompt -> status answered
    slow: dict[str, float] = field(default_factory=dict)  # word in the prompt -> seconds before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        seen = Seen(time.monotonic(), body, headers)
        with self.lock:
            self.seen.append(seen)
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            status, extra = scripted
            return status, extra, {"error": {"message": f"scripted {status}", "type": "server_error"}}
        for word, seconds in self.slow.items():
            if word in seen.prompt:
                time.sleep(seconds)
        for word, status in self.poison.items():
            if word in seen.prompt:
                return status, {}, {"error": {"message": f"cannot serve {word}", "type": "server_error"}}
        digest = hashlib.sha256(seen.prompt.encode()).hexdigest()[:12]
        text = f"Thought: thought {digest}" if "What the assistant did next:" in seen.prompt else f"answer {digest}"
        return (
            200,
            {},
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions":
                status, extra, payload = 404, {}, {"error": {"message": f"no route {self.path}"}}
            else:
                status, extra, payload = fake.reply(body, {k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _llm(endpoint: FakeEndpoint, **options: Any) -> LLMCompleter:
    options.setdefault("backoff_s", 0.01)
    return LLMCompleter(LLMCompleterConfig(base_url=endpoint.url, model="fake-model", **options))


def _digest(seen: Seen) -> str:
    return hashlib.sha256(seen.prompt.encode()).hexdigest()[:12]


def test_the_llm_completer_asks_with_the_next_call_and_with_the_observations(endpoint: FakeEndpoint) -> None:
    with _llm(endpoint) as completer:
        [result] = complete([_weather("Paris", answered=False)], completer)

    assert result.ok, result.error
    assert result.completed == {
        "turn 5 answer": "llm:fake-model",
        "turn 1 thought": "llm:fake-model",
        "turn 4 thought": "llm:fake-model",
    }
    answer, first, handover = endpoint.seen
    assert [s.body["model"] for s in endpoint.seen] == ["fake-model"] * 3
    assert {s.body["temperature"] for s in endpoint.seen} == {0}
    # The answer prompt: the conversation up to the call, then the observation.
    assert "User: What is the weather in Paris?" in answer.prompt
    assert 'Assistant called: get_weather({"city": "Paris"})' in answer.prompt
    assert 'get_weather returned: {"city": "Paris", "temperature_c": 21}' in answer.prompt
    assert "get_weather(city: string): Current weather of a city" in answer.prompt
    # The first thought explains the call the executor then made; the conversation stops before it.
    assert 'It called get_weather({"city": "Paris"})' in first.prompt
    assert "Assistant called" not in first.prompt
    # The hand-over's thought sees the completed answer.
    assert f"It replied to the user: answer {_digest(answer)}" in handover.prompt

    turns = result.trajectory.turns
    assert turns[5].content == f"answer {_digest(answer)}"
    assert turns[1].thought == f"thought {_digest(first)}"  # "Thought:" prefix dropped
    assert turns[4].thought == f"thought {_digest(handover)}"
    assert result.trajectory.metadata.missing == []
    render_text(result.trajectory)


def test_retries_on_500_and_429_honour_retry_after(endpoint: FakeEndpoint) -> None:
    endpoint.script = [(500, {}), (429, {"Retry-After": "1"})]
    completer = _llm(endpoint, max_attempts=3)

    [result] = complete([_weather("Rome")], completer)

    assert result.ok, result.error
    assert len(endpoint.seen) == 3
    assert completer.requests == 3 and completer.retries == 2
    assert result.trajectory.turns[1].thought == f"thought {_digest(endpoint.seen[-1])}"
    assert endpoint.seen[2].at - endpoint.seen[1].at >= 0.95  # Retry-After: 1, not the 0.02 s backoff


def test_a_record_is_reported_failed_once_the_attempts_are_spent_and_the_others_go_on(endpoint: FakeEndpoint) -> None:
    endpoint.poison = {"Atlantis": 503, "Lemuria": 400}
    completer = _llm(endpoint, max_attempts=3)
    records = [_weather("Paris"), _weather("Atlantis"), _weather("Lemuria"), _weather("Rome")]

    results = list(complete(records, completer))

    assert [r.ok for r in results] == [True, False, False, True]
    failed, refused = results[1], results[2]
    assert failed.trajectory == records[1] and failed.completed == {}
    assert failed.error is not None and refused.error is not None
    assert failed.error.startswith(f"turn 1 thought: {endpoint.url} (model 'fake-model'): HTTP 503 after 3 attempt(s)")
    assert "cannot serve Atlantis" in failed.error
    assert f"{endpoint.url} (model 'fake-model'): HTTP 400 (not retried)" in refused.error
    per_record = [sum(city in s.prompt for s in endpoint.seen) for city in ("Paris", "Atlantis", "Lemuria", "Rome")]
    assert per_record == [1, 3, 1, 1]


def test_a_timeout_is_retried_and_then_reported(endpoint: FakeEndpoint) -> None:
    endpoint.slow = {"Atlantis": 0.5}
    completer = _llm(endpoint, max_attempts=2, timeout_s=0.1)
    results = list(complete([_weather("Atlantis"), _weather("Paris")], completer))

    assert [r.ok for r in results] == [False, True]
    where = f"{endpoint.url} (model 'fake-model')"
    assert results[0].error == f"turn 1 thought: {where}: timed out (0.1 s) after 2 attempt(s)"
    assert sum("Atlantis" in s.prompt for s in endpoint.seen) == 2


def test_an_unreachable_endpoint_is_named_after_its_attempts() -> None:
    config = LLMCompleterConfig(base_url="http://127.0.0.1:9/v1", model="m", max_attempts=2, backoff_s=0.01)
    [result] = complete([_weather("Paris")], LLMCompleter(config))
    assert result.error is not None
    assert result.error.startswith("turn 1 thought: http://127.0.0.1:9/v1 (model 'm'): unreachable after 2 attempt(s)")


def test_the_rate_limit_spaces_requests_across_threads(endpoint: FakeEndpoint) -> None:
    rate, count = 10.0, 6
    completer = _llm(endpoint, requests_per_second=rate)
    records = [_weather(f"City{n}") for n in range(count)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results: list[CompletionResult] = list(pool.map(lambda t: complete_one(t, completer), records))

    assert all(r.ok for r in results)
    times = sorted(s.at for s in endpoint.seen)
    assert len(times) == count
    assert times[-1] - times[0] >= (count - 1) / rate - 0.01


def test_a_second_run_is_served_from_the_cache_and_a_new_prompt_version_misses(
    endpoint: FakeEndpoint, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    records = [_weather("Paris", answered=False), _weather("Rome"), _weather("Oslo")]
    first = list(complete(records, _llm(endpoint, cache_dir=str(cache))))
    sent = len(endpoint.seen)
    assert sent == 5 and all(r.ok for r in first)  # Paris: answer and two thoughts; Rome, Oslo: one thought each

    again = _llm(endpoint, cache_dir=str(cache))
    second = list(complete(records, again))
    assert len(endpoint.seen) == sent  # nothing sent
    assert again.cache_hits == 5 and again.requests == 0
    assert [r.trajectory for r in second] == [r.trajectory for r in first]

    entries = sorted(cache.rglob("*.json"))
    assert len(entries) == 5
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".json"]  # no temporary file left
    entry = json.loads(entries[0].read_text())
    assert (
        entry["key"] == entries[0].stem and entry["model"] == "fake-model" and entry["prompt_version"] == PROMPT_VERSION
    )

    bumped = _llm(endpoint, cache_dir=str(cache), prompt_version=PROMPT_VERSION + "-next")
    list(complete(records, bumped))
    assert bumped.cache_hits == 0 and len(endpoint.seen) == 2 * sent


def test_the_api_key_comes_from_the_named_environment_variable(
    endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOR_TEST_LLM_KEY", raising=False)
    with pytest.raises(ValueError, match="api_key_env: the environment variable 'MOR_TEST_LLM_KEY' is not set"):
        _llm(endpoint, api_key_env="MOR_TEST_LLM_KEY")

    monkeypatch.setenv("MOR_TEST_LLM_KEY", "sk-local-test")
    [result] = complete([_weather("Paris")], _llm(endpoint, api_key_env="MOR_TEST_LLM_KEY"))
    assert result.ok
    assert endpoint.seen[0].headers["authorization"] == "Bearer sk-local-test"
