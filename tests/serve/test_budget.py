"""Token budgets with OpenAI's meaning, through the official client against the real app and engine in process:
`max_completion_tokens` / `max_tokens` bound every token a request generates (reasoner, executor and summarizer
together) and running out is `finish_reason: "length"`; `role_max_tokens` (an extra field) caps one turn per role."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .asgi import KEY, MODEL
from .test_api import ADD, USER, WEATHER


def _create(app: Any, **fields: Any) -> ChatCompletion | list[ChatCompletionChunk]:
    """One `chat.completions.create` of the official async client over the app's ASGI transport."""

    async def call() -> Any:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        client = openai.AsyncOpenAI(base_url="http://test/v1", api_key=KEY, http_client=http, max_retries=0)
        try:
            result = await client.chat.completions.create(model=MODEL, messages=USER, **fields)
            return [chunk async for chunk in result] if fields.get("stream") else result
        finally:
            await http.aclose()

    return asyncio.run(call())


def _role_tokens(completion: ChatCompletion) -> dict[str, int]:
    return completion.model_extra["mor"]["role_tokens"]


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("tool_choice", ["required", "auto", "none"])
def test_the_budget_bounds_every_role_together(app: Any, name: str, tool_choice: str) -> None:
    for budget in (1, 7, 40):
        completion = _create(app, tools=[WEATHER, ADD], tool_choice=tool_choice, **{name: budget})
        assert isinstance(completion, ChatCompletion)
        choice, usage = completion.choices[0], completion.usage
        assert usage is not None and usage.completion_tokens <= budget, (budget, usage)
        assert sum(_role_tokens(completion).values()) == usage.completion_tokens
        assert completion.model_extra["mor"]["max_completion_tokens"] == budget
        if choice.finish_reason == "length":
            assert not choice.message.tool_calls
        if budget == 1:  # one token cannot hold a thought and a hand-over, let alone a call
            assert choice.finish_reason == "length" and usage.completion_tokens == 1


def test_without_a_budget_the_server_s_limit_applies(app: Any, runtime) -> None:
    completion = _create(app, tools=[WEATHER, ADD], tool_choice="required")
    assert completion.model_extra["mor"]["max_completion_tokens"] == runtime.args.max_completion_tokens
    caps = runtime.args.role_max_tokens
    assert all(_role_tokens(completion)[role] <= caps[role] for role in _role_tokens(completion))


def test_a_streamed_answer_stops_at_the_budget(app: Any) -> None:
    chunks = _create(app, tool_choice="none", max_tokens=5, stream=True, stream_options={"include_usage": True})
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens <= 5
    assert finish == ["length"] or usage.completion_tokens < 5


def test_role_max_tokens_caps_a_role_s_turn(app: Any) -> None:
    completion = _create(app, tools=[ADD], tool_choice="required", extra_body={"role_max_tokens": {"reasoner": 9}})
    assert 0 < _role_tokens(completion)["reasoner"] <= 9
    capped = _create(app, tools=[ADD], tool_choice="required", extra_body={"role_max_tokens": {"reasoner": 2}})
    # two tokens cannot hold the reasoner's hand-over: cut at its cap, the request ends in "length", not an error
    assert capped.choices[0].finish_reason == "length" and _role_tokens(capped) == {"reasoner": 2}


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ({"role_max_tokens": {"planner": 4}}, "role_max_tokens: got 'planner', this agent's roles are ["),
        ({"role_max_tokens": {"reasoner": 65}}, "role_max_tokens: got {'reasoner': 65}, this server allows at most 64"),
        ({"role_max_tokens": {"reasoner": 0}}, "role_max_tokens.reasoner: got 0, input should be greater than"),
        ({"max_completion_tokens": 65}, "max_completion_tokens: got 65, this server allows at most 64"),
    ],
)
def test_bad_budgets_are_400s_naming_the_field(app: Any, extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _create(app, extra_body=extra)
    assert fragment in caught.value.message and caught.value.code == "invalid_request"
