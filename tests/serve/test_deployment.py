"""End to end on a real Ray Serve deployment of the small trained agent, through the official `openai` client:
tool calls, tool results back, a final answer (also streamed); errors over HTTP; and a bounded load test of 64
concurrent multi-turn conversations with zero errors."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from jsonschema import validate

from mor.data import SyntheticDataset, Trajectory

from .conftest import ServedAgent
from .trained import agent_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tasks() -> tuple[SyntheticDataset, list[Trajectory]]:
    dataset = agent_dataset()
    return dataset, [t for t in dataset.test if t.metadata.category == "single"]


@dataclass
class Conversation:
    """What one client saw."""

    rounds: int = 0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    answer: str | None = None
    finish: str | None = None


def _converse(
    client: openai.OpenAI, served: ServedAgent, task: Trajectory, dataset: SyntheticDataset, *, max_rounds: int = 4
) -> Conversation:
    """Run a conversation the way user code does: call, run the requested tools, send the results back."""
    tools = [tool.to_openai() for tool in task.tools]
    schemas = {tool.name: tool.parameters for tool in task.tools}
    messages: list[Any] = [{"role": "user", "content": task.query}]
    box = dataset.toolbox()
    seen = Conversation()
    for _ in range(max_rounds):
        response = client.chat.completions.create(model=served.model, messages=messages, tools=tools)
        seen.rounds += 1
        choice = response.choices[0]
        assert response.usage is not None and response.usage.total_tokens > 0
        thought = (choice.message.model_extra or {}).get("reasoning_content")
        if thought:
            seen.thoughts.append(thought)
        if choice.finish_reason == "tool_calls":
            messages.append(choice.message)
            for call in choice.message.tool_calls or []:
                arguments = json.loads(call.function.arguments)
                validate(arguments, schemas[call.function.name])  # constrained decoding: always valid
                seen.calls.append((call.function.name, arguments))
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": json.dumps(box.execute(call.function.name, arguments)),
                    }
                )
            continue
        seen.answer, seen.finish = choice.message.content, choice.finish_reason
        break  # the answer, or a turn cut at a role's token budget (finish_reason "length")
    return seen


def _client(served: ServedAgent, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0, timeout=300, **kwargs)


def test_openai_client_gets_tool_calls_sends_results_and_gets_an_answer(served: ServedAgent, tasks) -> None:
    dataset, items = tasks
    client = _client(served)
    assert [model.id for model in client.models.list()] == [served.model]
    # The small test agent's quality depends on the machine's float arithmetic (the same recipe and code trained an
    # agent calling on 8 of 20 held-out items here, and on all of the first 3 elsewhere): the protocol is checked
    # on the first 3 of the first 12 items whose conversation makes calls, and at least 3 must.
    conversations = [_converse(client, served, task, dataset) for task in items[:12]]
    calling = [seen for seen in conversations if seen.calls]
    assert len(calling) >= 3, conversations[:3]
    for seen in calling[:3]:
        assert seen.answer and seen.finish in ("stop", "length"), seen
        assert seen.rounds >= 2
        # the reasoner learned the protocol's thoughts: plan a call first, hand over to the summarizer after results
        assert seen.thoughts[0].startswith("First I will call ")
        assert seen.thoughts[-1] == "I have all the results I need."


def test_streamed_final_answer_matches_the_whole_one(served: ServedAgent, tasks) -> None:
    dataset, items = tasks
    client = _client(served)
    task = items[3]
    tools = [tool.to_openai() for tool in task.tools]
    first = client.chat.completions.create(
        model=served.model, messages=[{"role": "user", "content": task.query}], tools=tools, tool_choice="required"
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.tool_calls
    box = dataset.toolbox()
    messages: list[Any] = [{"role": "user", "content": task.query}, message.model_dump(exclude_none=True)]
    for call in message.tool_calls:
        result = box.execute(call.function.name, json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    whole = client.chat.completions.create(
        model=served.model, messages=messages, tools=tools, tool_choice="none", max_tokens=24
    )
    chunks = list(
        client.chat.completions.create(
            model=served.model,
            messages=messages,
            tools=tools,
            tool_choice="none",
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_tokens_bounds_the_whole_request(served: ServedAgent, tasks) -> None:
    """The issue's case: max_tokens 1 returned a 44-token tool call. Now a budget counts every role's tokens."""
    _, items = tasks
    client = _client(served)
    task = items[4]
    ask = {"model": served.model, "messages": [{"role": "user", "content": task.query}]}
    ask["tools"] = [tool.to_openai() for tool in task.tools]
    free = client.chat.completions.create(**ask, tool_choice="required")
    assert free.choices[0].finish_reason == "tool_calls"
    needed = free.usage.completion_tokens  # the reasoner's thought and hand-over, then the executor's call
    roles = free.model_extra["mor"]["role_tokens"]
    assert sum(roles.values()) == needed and roles["reasoner"] < needed - 1
    one = client.chat.completions.create(**ask, tool_choice="required", max_tokens=1)
    assert one.choices[0].finish_reason == "length" and not one.choices[0].message.tool_calls
    assert one.usage.completion_tokens == 1
    exact = client.chat.completions.create(**ask, tool_choice="required", max_completion_tokens=needed)
    assert exact.choices[0].finish_reason == "tool_calls" and exact.usage.completion_tokens == needed
    assert [c.function.arguments for c in exact.choices[0].message.tool_calls] == [
        c.function.arguments for c in free.choices[0].message.tool_calls
    ]  # greedy: the same call when the budget just fits it
    short = client.chat.completions.create(**ask, tool_choice="required", max_completion_tokens=needed - 1)
    assert short.choices[0].finish_reason == "length" and not short.choices[0].message.tool_calls
    assert short.usage.completion_tokens == needed - 1
    chunks = list(client.chat.completions.create(**ask, tool_choice="required", max_tokens=needed - 1, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


def test_errors_over_http(served: ServedAgent, tasks) -> None:
    _, items = tasks
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.base_url, api_key="wrong-key-123", max_retries=0).models.list()
    client = _client(served)
    with pytest.raises(openai.NotFoundError, match="this server serves 'serve-test-agent'") as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "required": 3}}}
    with pytest.raises(openai.BadRequestError, match="not a valid JSON Schema") as bad:
        client.chat.completions.create(
            model=served.model, messages=[{"role": "user", "content": "hi"}], tools=[bad_tool]
        )
    assert bad.value.code == "invalid_tool_schema"
    response = httpx.post(
        f"{served.base_url}/chat/completions",
        content=b'{"model": ',
        headers={"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    health = httpx.get(f"http://127.0.0.1:{served.port}/health").json()
    assert health["status"] == "ok" and health["model"] == served.model


def test_64_concurrent_multi_turn_conversations(served: ServedAgent, tasks) -> None:
    dataset, items = tasks
    before = httpx.get(f"http://127.0.0.1:{served.port}/health").json()["batching"]
    http = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64), timeout=600)
    client = _client(served, http_client=http)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        chosen = [items[index % len(items)] for index in range(64)]
        futures = [pool.submit(_converse, client, served, task, dataset) for task in chosen]
        outcomes = [future.exception() or future.result() for future in futures]
    seconds = time.perf_counter() - started
    http.close()
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    after = httpx.get(f"http://127.0.0.1:{served.port}/health").json()["batching"]
    forwards = after["decode_forwards"] - before["decode_forwards"]
    mixed = after["mixed_role_forwards"] - before["mixed_role_forwards"]
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    complete = [o for o in finished if o.calls and o.answer]
    print(
        f"64 conversations in {seconds:.1f} s, {len(errors)} errors, {len(complete)} with calls and an answer; "
        f"{forwards} decode forwards, {mixed} of them with rows of several roles"
    )
    assert not errors, errors[:3]
    assert all(outcome.finish in ("stop", "length") for outcome in finished)  # every conversation came to an end
    # some stop at a token budget; how many depends on the small agent, trained on this machine (see above)
    assert len(complete) >= 32, [o for o in finished if o not in complete][:4]
    right = sum(
        1
        for outcome, task in zip(outcomes, chosen, strict=True)
        if outcome.calls and outcome.calls[0][0] == task.calls[0].name
    )
    calling = sum(1 for outcome in finished if outcome.calls)
    # the executor mostly calls the right one of the 3 offered functions (a third by chance; 32 of 42 here)
    assert right >= 0.6 * calling, (right, calling)
    assert mixed > 0  # reasoner, executor and summarizer rows of different users shared forwards
