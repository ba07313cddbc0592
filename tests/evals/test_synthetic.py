from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.agent import Agent, AgentConfig, ReplayGenerator, build_agent
from mor.base import train_tokenizer
from mor.data import (
    DEFAULT_ROLES,
    Renderer,
    SyntheticDataset,
    ToolCall,
    Trajectory,
    Turn,
    generate_synthetic,
    render_text,
)
from mor.evals.synthetic import SyntheticItemResult, evaluate_synthetic, summarize


@pytest.fixture(scope="module")
def dataset() -> SyntheticDataset:
    return generate_synthetic(tools=24, trajectories=300, seed=21, test_fraction=0.2)


@pytest.fixture(scope="module")
def tokenizer(dataset: SyntheticDataset):
    return train_tokenizer([render_text(t) for t in dataset.train], roles=DEFAULT_ROLES, vocab_size=512)


def _replay_agent(references: list[Trajectory], tokenizer) -> Agent:
    return Agent(ReplayGenerator(references, Renderer(tokenizer, DEFAULT_ROLES)), tokenizer)


def test_replaying_the_references_scores_everything_correct(dataset: SyntheticDataset, tokenizer) -> None:
    seen: list[tuple[int, int]] = []
    result = evaluate_synthetic(
        _replay_agent(dataset.test, tokenizer),
        dataset.test,
        toolbox=dataset.toolbox(),
        batch_size=8,
        progress=lambda done, total: seen.append((done, total)),
    )
    summary = result.summary
    assert summary.items == len(dataset.test) == 60 and summary.passed == 60
    assert summary.accuracy == summary.call_accuracy == summary.answer_accuracy == 1.0
    assert summary.failures_by_role == {}
    assert set(summary.accuracy_by_category) == {t.metadata.category for t in dataset.test}
    assert seen[-1] == (60, 60) and len(seen) == 8
    row = result.items[0].to_row()
    assert row["passed"] is True and row["failing_role"] is None and row["expected_calls"] == row["predicted_calls"]
    metrics = summary.metrics()
    assert metrics["synthetic/accuracy"] == 1.0 and "synthetic/accuracy/single" in metrics
    assert evaluate_synthetic(_replay_agent(dataset.test, tokenizer), dataset.test, max_items=5).summary.items == 5


def _first(dataset: SyntheticDataset, category: str) -> Trajectory:
    return next(t for t in dataset.test if t.metadata.category == category)


def test_failures_are_attributed_to_the_role_that_left_the_reference(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _first(dataset, "single")
    executor_at = next(i for i, t in enumerate(gold.turns) if t.role == "executor")
    call = gold.turns[executor_at].calls[0]

    early_stop = gold.model_copy(deep=True)
    early_stop.turns = [
        gold.turns[0],
        Turn(role="reasoner", thought="Done.", next_role="summarizer"),
        Turn(role="summarizer", content="I cannot help."),
    ]
    wrong_call = gold.model_copy(deep=True)
    changed = {
        key: (value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{value}x")
        for key, value in call.arguments.items()
    }
    wrong_call.turns[executor_at] = Turn(role="executor", calls=[ToolCall(name=call.name, arguments=changed)])
    bad_json = gold.model_copy(deep=True)
    bad_json.turns[executor_at] = Turn(role="executor", content='{"name": "' + call.name + '", "arguments": {')
    wrong_answer = gold.model_copy(deep=True)
    wrong_answer.turns[-1] = Turn(role="summarizer", content="Here you go.")

    expected = {
        "reasoner": (early_stop, "picked summarizer as the next role, expected executor"),
        "executor": (wrong_call, "called " + call.name),
        "summarizer": (wrong_answer, "answer misses"),
    }
    for role, (variant, reason) in expected.items():
        result = evaluate_synthetic(_replay_agent([variant], tokenizer), [gold], toolbox=dataset.toolbox())
        (item,) = result.items
        assert not item.passed and item.failing_role == role, (role, item)
        assert reason in (item.failure_reason or ""), (role, item.failure_reason)
    (item,) = evaluate_synthetic(_replay_agent([bad_json], tokenizer), [gold], toolbox=dataset.toolbox()).items
    assert item.failing_role == "executor" and "not valid JSON" in (item.failure_reason or "")
    assert not item.calls_match and item.predicted_calls == []
    (item,) = evaluate_synthetic(_replay_agent([wrong_answer], tokenizer), [gold], toolbox=dataset.toolbox()).items
    assert item.calls_match and not item.answer_ok and item.output == "Here you go."


def test_an_untrained_base_scores_near_zero(dataset: SyntheticDataset, tokenizer) -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    agent = build_agent(model, tokenizer, config=AgentConfig(max_new_tokens={}, default_max_new_tokens=24))
    result = evaluate_synthetic(agent, dataset.test, max_items=6, batch_size=6)
    assert result.summary.accuracy == 0.0 and result.summary.items == 6
    assert all(item.failing_role in DEFAULT_ROLES and item.failure_reason for item in result.items)
    assert sum(result.summary.failures_by_role.values()) == 6


def test_summary_arithmetic() -> None:
    def item(passed: bool, calls: bool, answer: bool, role: str | None, category: str, latency: float):
        return SyntheticItemResult("i", category, passed, calls, answer, role, None, None, [], [], latency)

    summary = summarize(
        [
            item(True, True, True, None, "single", 1.0),
            item(False, True, False, "summarizer", "single", 2.0),
            item(False, False, False, "executor", "multi", 3.0),
            item(True, True, True, None, "multi", 4.0),
        ]
    )
    assert (summary.items, summary.passed, summary.accuracy) == (4, 2, 0.5)
    assert summary.call_accuracy == 0.75 and summary.answer_accuracy == 0.5
    assert summary.failures_by_role == {"summarizer": 1, "executor": 1}
    assert summary.accuracy_by_category == {"multi": 0.5, "single": 0.5}
    assert summary.mean_latency_s == 2.5 and summary.p95_latency_s == 4.0
    assert summarize([]).accuracy == 0.0
