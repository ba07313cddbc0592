"""BFCL items through a target: the tools offered, the output scored, the failure reason and the failing role.

The model is the real role-gated agent over a scripted role generator: an oracle that writes each item's ground
truth (every item passes), and saboteurs that fail items in one known way each (the row must say which way and
which role). The data is the real BFCL v4 data, read in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mor.agent import Agent, AgentConfig
from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES
from mor.evals.bfcl import BfclItem, load_items, reference_output
from mor.evals.bfcl_run import bfcl_metrics, bfcl_tools, run_bfcl_category, run_bfcl_item
from mor.evals.target import TargetCall, TargetReply
from mor.evals.targets import AgentTarget
from mor_testing import benchmarks_dir as _benchmarks_dir


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return _benchmarks_dir()


@pytest.fixture(scope="module")
def items(data_dir: Path) -> dict[str, BfclItem]:
    chosen: dict[str, BfclItem] = {}
    for category, count in (
        ("simple_python", 3),
        ("simple_java", 1),
        ("simple_javascript", 1),
        ("multiple", 1),
        ("parallel", 1),
        ("irrelevance", 2),
        ("live_relevance", 1),
    ):
        for item in load_items(category, data_dir)[:count]:
            chosen[item.id] = item
    return chosen


@pytest.fixture(scope="module")
def tokenizer(items: dict[str, BfclItem]) -> Any:
    texts = [item.question for item in items.values()] * 2
    return train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=400)


def _reference_calls(item: BfclItem) -> list[dict[str, Any]]:
    return [
        {"name": name.replace(".", "_"), "arguments": arguments}
        for call in reference_output(item)
        for name, arguments in call.items()
    ]


Policy = Callable[[BfclItem, str], str]


def oracle(item: BfclItem, role: str) -> str:
    """Calls the ground truth's functions with its first acceptable values; answers in text when none fits."""
    needs_call = item.ground_truth is not None or item.category == "live_relevance"
    if role == "reasoner":
        return "I will call the function. Next: executor" if needs_call else "No function fits. Next: summarizer"
    if role == "executor":
        if item.ground_truth is None:  # live_relevance: any call of an offered function is right
            return json.dumps({"name": bfcl_tools(item)[0]["function"]["name"], "arguments": {}})
        return json.dumps(_reference_calls(item))
    return "None of the functions can answer this."


class ItemScripted:
    """A role generator that recognises the item in its prompt and writes what `policy` says for the role."""

    def __init__(self, tokenizer: Any, items: Mapping[str, BfclItem], policy: Policy) -> None:
        self.tokenizer = tokenizer
        self.items = list(items.values())
        self.policy = policy

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        prompt = self.tokenizer.decode(list(input_ids))
        item = max((i for i in self.items if i.question in prompt), key=lambda i: len(i.question))
        ids = self.tokenizer(self.policy(item, role), add_special_tokens=False)["input_ids"]
        return (ids + list(stop_ids))[: max(max_new_tokens, len(ids) + len(stop_ids))]


def _target(tokenizer: Any, items: Mapping[str, BfclItem], policy: Policy) -> AgentTarget:
    agent = Agent(ItemScripted(tokenizer, items, policy), tokenizer, config=AgentConfig(max_steps=3))
    return AgentTarget(agent, name="scripted")


def test_tools_offered_for_python_items(items: dict[str, BfclItem]) -> None:
    (area,) = bfcl_tools(items["simple_python_0"])
    assert area == {
        "type": "function",
        "function": {
            "name": "calculate_triangle_area",
            "description": "Calculate the area of a triangle given its base and height. Note that the provided "
            "function is in Python 3 syntax.",
            "parameters": {
                "type": "object",
                "properties": {
                    "base": {"type": "integer", "description": "The base of the triangle."},
                    "height": {"type": "integer", "description": "The height of the triangle."},
                    "unit": {
                        "type": "string",
                        "description": "The unit of measure (defaults to 'units' if not specified)",
                    },
                },
                "required": ["base", "height"],
            },
        },
    }
    assert bfcl_tools(items["simple_python_1"])[0]["function"]["name"] == "math_factorial"  # no "." allowed
    bmi = bfcl_tools(items["irrelevance_0"])[0]["function"]["parameters"]["properties"]
    assert bmi["weight"]["type"] == "number"  # BFCL's float


def test_tools_offered_for_java_and_javascript_items_take_source_text(items: dict[str, BfclItem]) -> None:
    (java,) = bfcl_tools(items["simple_java_0"])
    assert java["function"]["name"] == "GeometryPresentation_createPresentation"
    controller = java["function"]["parameters"]["properties"]["controller"]
    assert controller == {
        "type": "string",
        "description": "The IResultSetController instance responsible for controlling the result set. "
        "Give this Java any value as Java source text.",
    }
    (js,) = bfcl_tools(items["simple_javascript_0"])
    flag = js["function"]["parameters"]["properties"]["isComplete"]
    assert flag["type"] == "string" and flag["description"].endswith(
        "Give this JavaScript Boolean value as JavaScript source text."
    )


def test_the_oracle_passes_every_item_with_no_failing_role(tokenizer: Any, items: dict[str, BfclItem]) -> None:
    target = _target(tokenizer, items, oracle)
    for item in items.values():
        run = run_bfcl_item(target, item)
        assert run.passed, (item.id, run.reason, run.message)
        assert run.failing_role is None and run.reason is None
    parallel = run_bfcl_item(target, items["parallel_0"])
    assert parallel.output["calls"] == [
        {"spotify_play": {"artist": "Taylor Swift", "duration": 20}},
        {"spotify_play": {"artist": "Maroon 5", "duration": 15}},
    ]
    assert parallel.output["thought"] == "I will call the function."
    row = parallel.to_row()
    assert (row.category, row.item_id, row.passed, row.failure_reason, row.failing_role) == (
        "parallel",
        "parallel_0",
        True,
        None,
        None,
    )
    assert row.latency_ms is not None and row.latency_ms > 0


def _saboteur(change: str) -> Policy:
    def policy(item: BfclItem, role: str) -> str:
        if change == "no_call" and role == "reasoner":
            return "I can answer myself. Next: summarizer"
        if change == "call_anyway" and role == "reasoner":
            return "I will call it. Next: executor"
        if role == "executor":
            if change == "garbage":
                return "call the function please"
            if change == "unknown_function":
                return json.dumps({"name": "teleport", "arguments": {"to": "Mars"}})
            if change == "call_anyway":
                return json.dumps(
                    {"name": bfcl_tools(item)[0]["function"]["name"], "arguments": {"weight": 70.0, "height": 1.8}}
                )
            calls = _reference_calls(item)
            if change == "wrong_value":
                calls[0]["arguments"]["base"] = 11
            if change == "missing_parameter":
                del calls[0]["arguments"]["height"]
            if change == "wrong_type":
                calls[0]["arguments"]["base"] = "10"
            if change == "wrong_count":
                calls = calls[:1]
            return json.dumps(calls)
        return oracle(item, role)

    return policy


@pytest.mark.parametrize(
    ("item_id", "change", "reason", "role"),
    [
        ("simple_python_0", "wrong_value", "wrong_value", "executor"),
        ("simple_python_0", "missing_parameter", "missing_parameter", "executor"),
        ("simple_python_0", "wrong_type", "wrong_type", "executor"),
        ("parallel_0", "wrong_count", "wrong_count", "executor"),
        ("simple_python_0", "no_call", "no_call", "reasoner"),
        ("live_relevance_0-0-0", "no_call", "no_call", "reasoner"),
        ("irrelevance_0", "call_anyway", "unexpected_call", "reasoner"),
        ("simple_python_0", "garbage", "unparseable", "executor"),
        ("simple_python_0", "unknown_function", "wrong_function", "executor"),
    ],
)
def test_a_sabotaged_item_fails_for_its_reason_and_role(
    tokenizer: Any, items: dict[str, BfclItem], item_id: str, change: str, reason: str, role: str
) -> None:
    run = run_bfcl_item(_target(tokenizer, items, _saboteur(change)), items[item_id])
    assert not run.passed
    assert (run.reason, run.failing_role) == (reason, role), run.message
    row = run.to_row()
    assert (row.failure_reason, row.failing_role) == (reason, role) and row.detail == run.message


def test_the_executors_unusable_output_is_kept_and_named(tokenizer: Any, items: dict[str, BfclItem]) -> None:
    run = run_bfcl_item(_target(tokenizer, items, _saboteur("garbage")), items["simple_python_0"])
    assert run.output["raw"] == "call the function please"
    assert run.output["failure"].startswith("executor output is not valid JSON")
    assert run.message.endswith("[executor: " + run.output["failure"] + "]")
    assert run.output["error_type"] == "ast_decoder:decoder_failed"


class PlainModel:
    """A model without roles that answers every item with the same text (a prompting-style baseline)."""

    name = "plain"

    def __init__(self, content: str) -> None:
        self.content = content

    def respond(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *, tool_choice: str = "auto"
    ) -> TargetReply:
        return TargetReply(content=self.content, latency_s=0.25)


def test_a_plain_model_is_scored_without_roles(items: dict[str, BfclItem]) -> None:
    right = run_bfcl_item(PlainModel("[calculate_triangle_area(base=10, height=5)]"), items["simple_python_0"])
    assert right.passed and right.latency_s == 0.25
    wrong = run_bfcl_item(PlainModel("[calculate_triangle_area(base=10, height=6)]"), items["simple_python_0"])
    assert (wrong.reason, wrong.failing_role) == ("wrong_value", None)
    prose = run_bfcl_item(PlainModel("The area is 25 square units."), items["simple_python_0"])
    assert (prose.reason, prose.failing_role) == ("no_call", None)
    assert prose.output == {
        "calls": [],
        "content": "The area is 25 square units.",
        "error_type": "simple_function_checker:wrong_count",
    }


class FunctionCaller:
    """A function-calling model that always calls with the same JSON arguments text."""

    name = "caller"

    def __init__(self, name: str, arguments: str) -> None:
        self.call = TargetCall(name, {}, arguments, "c1")

    def respond(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *, tool_choice: str = "auto"
    ) -> TargetReply:
        return TargetReply(calls=[self.call], failure="arguments are not JSON")


def test_undecodable_call_arguments_are_unparseable(items: dict[str, BfclItem]) -> None:
    run = run_bfcl_item(FunctionCaller("calculate_triangle_area", '{"base": 10,'), items["simple_python_0"])
    assert (run.passed, run.reason, run.failing_role) == (False, "unparseable", None)


def test_a_category_run_and_its_metrics(tokenizer: Any, items: dict[str, BfclItem], data_dir: Path) -> None:
    target = _target(tokenizer, items, oracle)
    seen: list[tuple[int, int]] = []
    python = run_bfcl_category(
        target, "bfcl/simple_python", data_dir, max_items=2, progress=lambda done, total: seen.append((done, total))
    )
    assert python.category == "simple_python" and [i.item_id for i in python.items] == [
        "simple_python_0",
        "simple_python_1",
    ]
    assert seen == [(1, 2), (2, 2)] and python.score.accuracy == 1.0 and python.seconds > 0
    java = run_bfcl_category(target, "simple_java", data_dir, item_ids=["simple_java_0"])
    javascript = run_bfcl_category(
        _target(tokenizer, items, _saboteur("no_call")), "simple_javascript", data_dir, max_items=1
    )
    assert javascript.failures_by_role == {"reasoner": 1} and javascript.failures_by_reason == {"no_call": 1}
    metrics = bfcl_metrics([python, java, javascript])
    assert metrics["items"] == 4.0 and metrics["accuracy"] == 0.75
    assert metrics["accuracy/simple_python"] == 1.0 and metrics["accuracy/simple_javascript"] == 0.0
    assert metrics["summary/simple"] == pytest.approx(2 / 3)  # unweighted mean of the three languages
    assert "summary/non_live_ast" not in metrics  # multiple, parallel, ... were not run
    assert metrics["failures/reasoner"] == 1.0 and metrics["reasons/no_call"] == 1.0
    with pytest.raises(ValueError, match="item_ids: \\['nope'\\] are not items of simple_java"):
        run_bfcl_category(target, "simple_java", data_dir, item_ids=["nope"])
    with pytest.raises(ValueError, match="max_items: got 0"):
        run_bfcl_category(target, "simple_java", data_dir, max_items=0)
