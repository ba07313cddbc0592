"""Held-out evaluation of the agent on the synthetic test set, with the synthetic tools as the environment.

An item passes when the agent's calls equal the reference calls (exact function name and arguments, in order) and
the final answer contains every fact the reference answer must contain. A failing item is attributed to the first
role that left the reference path: the reasoner (wrong next role), the executor (wrong or unparsable call) or the
summarizer (answer misses a fact). Pure library: callers store the rows and metrics.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mor.agent import Agent, AgentRun, AgentTask
from mor.data.schema import ToolCall, Trajectory, Turn
from mor.data.synthetic import SyntheticToolbox

__all__ = [
    "SUITE",
    "SyntheticItemResult",
    "SyntheticSummary",
    "SyntheticEvalResult",
    "score_run",
    "summarize",
    "evaluate_synthetic",
]

SUITE = "synthetic"


@dataclass
class SyntheticItemResult:
    """The result of one held-out item."""

    item_id: str
    category: str | None
    passed: bool
    calls_match: bool
    answer_ok: bool
    failing_role: str | None
    failure_reason: str | None
    output: str | None
    predicted_calls: list[dict[str, Any]]
    expected_calls: list[dict[str, Any]]
    latency_s: float
    role_seconds: dict[str, float] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The result as plain data (JSON-able) for SQL rows and artifacts."""
        return asdict(self)


@dataclass
class SyntheticSummary:
    """Aggregate scores of a run over the held-out set."""

    items: int
    passed: int
    accuracy: float
    call_accuracy: float
    answer_accuracy: float
    failures_by_role: dict[str, int]
    accuracy_by_category: dict[str, float]
    mean_latency_s: float
    p95_latency_s: float

    def metrics(self, prefix: str = f"{SUITE}/") -> dict[str, float]:
        """Flat numeric metrics, e.g. `synthetic/accuracy`, `synthetic/failures/executor`."""
        out = {
            f"{prefix}items": float(self.items),
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}call_accuracy": self.call_accuracy,
            f"{prefix}answer_accuracy": self.answer_accuracy,
            f"{prefix}mean_latency_s": self.mean_latency_s,
            f"{prefix}p95_latency_s": self.p95_latency_s,
        }
        out.update({f"{prefix}failures/{role}": float(n) for role, n in self.failures_by_role.items()})
        out.update({f"{prefix}accuracy/{cat}": acc for cat, acc in self.accuracy_by_category.items()})
        return out


@dataclass
class SyntheticEvalResult:
    """Per-item results and their summary."""

    items: list[SyntheticItemResult]
    summary: SyntheticSummary


def _call_text(call: ToolCall) -> str:
    return f"{call.name}({json.dumps(call.arguments, ensure_ascii=False, sort_keys=True)})"


def _agent_turns(turns: Sequence[Turn]) -> list[Turn]:
    return [turn for turn in turns if not turn.is_context]


def _first_divergence(gold: Trajectory, run: AgentRun, answer_ok: bool) -> tuple[str, str] | None:
    """(role, reason) of the first predicted role turn that leaves the reference path."""
    predicted = _agent_turns(run.trajectory.turns)
    for index, expected in enumerate(_agent_turns(gold.turns)):
        if index >= len(predicted):
            failure = run.failures[0] if run.failures else None
            if failure is not None:
                return failure.role, failure.reason
            return expected.role, f"the agent stopped before the {expected.role} turn"
        actual = predicted[index]
        if expected.next_role is not None:
            if actual.next_role != expected.next_role:
                got = actual.next_role if actual.next_role is not None else "nothing"
                return expected.role, f"picked {got} as the next role, expected {expected.next_role}"
        elif expected.calls:
            if not actual.calls:
                failure = next((f for f in run.failures if f.role == expected.role), None)
                return expected.role, failure.reason if failure else "made no call"
            if [c.key() for c in actual.calls] != [c.key() for c in expected.calls]:
                got = "; ".join(_call_text(c) for c in actual.calls)
                want = "; ".join(_call_text(c) for c in expected.calls)
                return expected.role, f"called {got}, expected {want}"
        elif expected.content is not None and not answer_ok:
            missing = [fact for fact in gold.metadata.answer_contains if fact not in (actual.content or "")]
            return expected.role, f"answer misses {missing}"
    if len(predicted) > len(_agent_turns(gold.turns)):
        extra = predicted[len(_agent_turns(gold.turns))]
        return extra.role, "went on after the reference ended"
    return None


def score_run(gold: Trajectory, run: AgentRun) -> SyntheticItemResult:
    """Score one agent run against its reference trajectory."""
    expected = gold.calls
    calls_match = [c.key() for c in run.calls] == [c.key() for c in expected]
    answer = run.answer
    answer_ok = answer is not None and all(fact in answer for fact in gold.metadata.answer_contains)
    passed = calls_match and answer_ok
    failing_role: str | None = None
    reason: str | None = None
    if not passed:
        divergence = _first_divergence(gold, run, answer_ok)
        if divergence is None:  # same path, yet calls or answer differ: the answer is the summarizer's
            summarizer = next(
                (t.role for t in reversed(gold.turns) if t.content is not None and not t.is_context), "summarizer"
            )
            divergence = (summarizer, "the final answer check failed")
        failing_role, reason = divergence
    return SyntheticItemResult(
        item_id=gold.id,
        category=gold.metadata.category,
        passed=passed,
        calls_match=calls_match,
        answer_ok=answer_ok,
        failing_role=failing_role,
        failure_reason=reason,
        output=answer,
        predicted_calls=[{"name": c.name, "arguments": c.arguments} for c in run.calls],
        expected_calls=[{"name": c.name, "arguments": c.arguments} for c in expected],
        latency_s=run.latency_s,
        role_seconds=dict(run.role_seconds),
    )


def _rate(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(items: Sequence[SyntheticItemResult]) -> SyntheticSummary:
    """Accuracy (overall, calls, answers, per category), failures per role and latency of a set of results."""
    by_category: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        by_category[item.category or "unknown"].append(item.passed)
    latencies = sorted(item.latency_s for item in items)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
    return SyntheticSummary(
        items=len(items),
        passed=sum(item.passed for item in items),
        accuracy=_rate([item.passed for item in items]),
        call_accuracy=_rate([item.calls_match for item in items]),
        answer_accuracy=_rate([item.answer_ok for item in items]),
        failures_by_role=dict(Counter(item.failing_role for item in items if item.failing_role)),
        accuracy_by_category={cat: _rate(flags) for cat, flags in sorted(by_category.items())},
        mean_latency_s=statistics.fmean(latencies) if latencies else 0.0,
        p95_latency_s=p95,
    )


def evaluate_synthetic(
    agent: Agent,
    trajectories: Sequence[Trajectory],
    *,
    toolbox: SyntheticToolbox | None = None,
    max_items: int | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticEvalResult:
    """Run `agent` on each held-out trajectory's query with the synthetic tools and score it.

    Episodes run `batch_size` at a time in lockstep (see `Agent.run_batch`); an item's latency is its share of the
    model time. `progress(done, total)` is called after each batch.
    """
    items = list(trajectories[:max_items] if max_items else trajectories)
    environment = toolbox or SyntheticToolbox()
    results: list[SyntheticItemResult] = []
    for first in range(0, len(items), batch_size):
        golds = items[first : first + batch_size]
        tasks = [
            AgentTask(
                query=gold.query or "",
                tools=gold.tools,
                system=gold.turns[0].content if gold.turns and gold.turns[0].role == "system" else None,
                id=gold.id,
            )
            for gold in golds
        ]
        runs = agent.run_batch(tasks, environment.execute, batch_size=batch_size)
        results.extend(score_run(gold, run) for gold, run in zip(golds, runs, strict=True))
        if progress is not None:
            progress(len(results), len(items))
    return SyntheticEvalResult(items=results, summary=summarize(results))
