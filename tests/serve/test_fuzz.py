"""Fuzzing `POST /v1/chat/completions`: whatever the body, the answer is a completion or a 4xx in OpenAI's error
shape, never a 500, and the engine keeps running.

`fuzz_corpus.jsonl` keeps the inputs that once broke the server (lone surrogates, 70-bit seeds, ...) and other
edge cases, with the status each must get; it is replayed on every run before hypothesis explores further.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from mor.serve.runtime import AgentRuntime

from .asgi import MODEL, request

CORPUS = [
    json.loads(line)
    for line in (Path(__file__).with_name("fuzz_corpus.jsonl")).read_text().splitlines()
    if line.strip()
]
VALID: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather in Oslo?"}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ],
    "tool_choice": "auto",
    "max_tokens": 8,
}


def _check(response: Any) -> int:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        ChatCompletion.model_validate(body)
    else:
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["message"]
    return response.status_code


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_corpus(app: Any, entry: dict[str, Any]) -> None:
    raw = entry["raw"].encode("utf-8", "surrogatepass") if "raw" in entry else json.dumps(entry["body"]).encode()
    assert _check(request(app, "POST", "/v1/chat/completions", raw=raw)) == entry["status"]


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
_PATHS = [
    ("model",),
    ("messages",),
    ("messages", 0),
    ("messages", 1, "content"),
    ("messages", 1, "role"),
    ("tools",),
    ("tools", 0, "function", "parameters"),
    ("tools", 0, "function", "parameters", "properties"),
    ("tools", 0, "function", "name"),
    ("tool_choice",),
    ("max_tokens",),
    ("temperature",),
    ("stream",),
    ("stop",),
    ("seed",),
    ("parallel_tool_calls",),
    ("n",),
    ("extra_field",),
]


def _mutate(path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    body = json.loads(json.dumps(VALID))
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return body


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(path=st.sampled_from(_PATHS), value=_JSON, delete=st.booleans())
def test_mutated_requests(app: Any, path: tuple[Any, ...], value: Any, delete: bool) -> None:
    _check(request(app, "POST", "/v1/chat/completions", raw=json.dumps(_mutate(path, value, delete)).encode()))


@_FUZZ
@given(body=st.one_of(_JSON, st.binary(max_size=64).map(lambda raw: {"__raw__": raw.hex()})))
def test_arbitrary_bodies(app: Any, body: Any) -> None:
    raw = bytes.fromhex(body["__raw__"]) if isinstance(body, dict) and "__raw__" in body else json.dumps(body).encode()
    assert _check(request(app, "POST", "/v1/chat/completions", raw=raw)) in (400, 404)


def test_the_server_survives_the_fuzzing(app: Any, runtime: AgentRuntime) -> None:
    assert runtime.engine.alive
    assert request(app, "GET", "/health", key=None).json()["status"] == "ok"
    assert _check(request(app, "POST", "/v1/chat/completions", body=VALID)) == 200
