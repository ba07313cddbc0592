"""`run_group`: whole runs over real HTTP (virtual API server, fake simulator and judge endpoints)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mor.evals.stabletoolbench import (
    FAILURE_REASONS,
    LlmEndpoint,
    LlmJudge,
    LlmSimulator,
    LoopConfig,
    ResponseCache,
    StbDataError,
    StbQuery,
    VirtualApiServer,
    run_group,
    summarize,
)
from mor.evals.target import TargetReply

from ._fakes import ExampleTarget, FakeChatServer, Reply, ScriptedTarget, example_arguments, judge_message


def _prefill(cache_dir: Path, query: StbQuery, response: object) -> None:
    first = query.tools[0]
    ResponseCache(cache_dir).put(
        query.routes[first["function"]["name"]], example_arguments(first), {"error": "", "response": response}
    )


def test_a_run_with_the_rule_based_judge_labels_every_result(
    tmp_path: Path, benchmarks_dir: Path, g1_instruction: list[StbQuery]
) -> None:
    _prefill(tmp_path, g1_instruction[0], {"videos": ["Stranger Things trailer"]})
    seen: list[tuple[int, int]] = []
    result = run_group(
        ExampleTarget(),
        "stabletoolbench/G1_instruction",
        benchmarks_dir,
        cache_dir=tmp_path,
        max_items=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    first, second = result.items
    assert (first.item_id, second.item_id) == (g1_instruction[0].id, g1_instruction[1].id)
    assert first.passed and first.failure_reason is None and first.score == 1.0
    assert first.output["final_answer"] == 'Here is what I found: {"videos": ["Stranger Things trailer"]}'
    assert [step["source"] for step in first.output["steps"]] == ["cache", ""]
    # Nothing cached for the second query and no simulator: the call errs, the answer rests on nothing.
    assert not second.passed and second.failure_reason == "tool_errors"
    assert second.output["steps"][0]["error"].startswith("not cached")
    assert {item.judge_kind for item in result.items} == {"rule-based"}
    assert {item.output["judge"]["kind"] for item in result.items} == {"rule-based"}
    assert all(item.category == "G1_instruction" for item in result.items)
    summary = result.summary
    assert (summary.group, summary.mode, summary.judge_kind) == ("G1_instruction", "cot", "rule-based")
    assert (summary.items, summary.passed, summary.pass_rate, summary.sopr) == (2, 1, 0.5, 0.5)
    assert summary.failures_by_reason == {"tool_errors": 1} and summary.mean_queries == 2.0
    metrics = summary.metrics()
    assert metrics["stabletoolbench/G1_instruction/sopr"] == 0.5
    assert metrics["stabletoolbench/G1_instruction/failures/tool_errors"] == 1.0
    assert seen == [(1, 2), (2, 2)]
    for item in result.items:  # rows are plain JSON
        row = item.to_row()
        assert json.loads(json.dumps(row)) == row
        assert set(row) == {
            "item_id",
            "category",
            "passed",
            "failure_reason",
            "failing_role",
            "output",
            "latency_s",
            "judge_kind",
            "score",
        }


def test_a_run_with_simulator_and_llm_judge_in_dfsdt_mode(
    tmp_path: Path, benchmarks_dir: Path, fake_llm: Callable[[Reply], FakeChatServer]
) -> None:
    simulator_llm = fake_llm(lambda body: json.dumps({"error": "", "response": {"result": "simulated data"}}))
    judge_llm = fake_llm(lambda body: judge_message("Solved", "answers it"))
    result = run_group(
        ExampleTarget(),
        "G3_instruction",
        benchmarks_dir,
        cache_dir=tmp_path,
        simulator=LlmSimulator(LlmEndpoint(simulator_llm.url, "sim")),
        judge=LlmJudge(LlmEndpoint(judge_llm.url, "judge"), judgements=3),
        mode="dfsdt",
        max_items=2,
    )
    assert [item.passed for item in result.items] == [True, True]
    assert {item.judge_kind for item in result.items} == {"llm"} and result.summary.judge_kind == "llm"
    assert result.summary.sopr == 1.0 and result.summary.mode == "dfsdt"
    assert all(item.output["mode"] == "dfsdt" and item.output["search"]["queries"] == 2 for item in result.items)
    # Both queries start with the same call: simulated once, then answered from the cache.
    assert [step["source"] for step in result.items[0].output["steps"]] == ["simulator", ""]
    assert [step["source"] for step in result.items[1].output["steps"]] == ["cache", ""]
    assert len(simulator_llm.requests) == 1 and len(judge_llm.requests) == 6
    assert ResponseCache(tmp_path).count() == 1


def test_a_run_against_a_running_server_by_url(
    tmp_path: Path, benchmarks_dir: Path, g1_instruction: list[StbQuery]
) -> None:
    _prefill(tmp_path, g1_instruction[1], ["something"])
    with VirtualApiServer(tmp_path) as server:
        result = run_group(
            ExampleTarget(),
            "G1_instruction",
            benchmarks_dir,
            api=server.url,
            item_ids=[g1_instruction[1].id],
            workers=2,
        )
        assert server.stats.cache_hits == 1
        again = run_group(
            ExampleTarget(), "G1_instruction", benchmarks_dir, api=server, item_ids=[g1_instruction[1].id]
        )
        assert server.stats.cache_hits == 2 and again.items[0].passed
    assert [item.item_id for item in result.items] == [g1_instruction[1].id]
    assert result.items[0].passed


def test_failing_roles_and_reasons_come_through(tmp_path: Path, benchmarks_dir: Path) -> None:
    target = ScriptedTarget(lambda messages, tools: TargetReply(failure="no role named", failing_role="reasoner"))
    result = run_group(target, "G2_category", benchmarks_dir, cache_dir=tmp_path, max_items=3, workers=3)
    assert [(i.failure_reason, i.failing_role, i.passed) for i in result.items] == [
        ("no_finish", "reasoner", False)
    ] * 3
    assert result.summary.failures_by_role == {"reasoner": 3}
    assert result.summary.metrics()["stabletoolbench/G2_category/failures_by_role/reasoner"] == 3.0
    always_calling = ScriptedTarget(lambda messages, tools: ExampleTarget().respond(messages[:2], tools))
    limited = run_group(
        always_calling, "G2_category", benchmarks_dir, cache_dir=tmp_path, max_items=1, config=LoopConfig(max_steps=2)
    )
    assert limited.items[0].failure_reason == "step_limit" and limited.items[0].output["queries"] == 2
    assert set(FAILURE_REASONS) >= {"no_finish", "step_limit", "tool_errors", "gave_up", "judged_unsolved"}


def test_results_of_two_judge_kinds_are_never_summarised_together(tmp_path: Path, benchmarks_dir: Path) -> None:
    result = run_group(ExampleTarget(), "G1_tool", benchmarks_dir, cache_dir=tmp_path, max_items=1)
    llm_item = result.items[0]
    llm_item.judge_kind = "llm"
    with pytest.raises(ValueError, match=r"judge_kind: results judged by \['llm', 'rule-based'\] cannot be summar"):
        summarize(
            [*run_group(ExampleTarget(), "G1_tool", benchmarks_dir, cache_dir=tmp_path, max_items=1).items, llm_item],
            group="G1_tool",
            mode="cot",
            judge_kind="rule-based",
        )


def test_bad_arguments_name_the_field(tmp_path: Path, benchmarks_dir: Path) -> None:
    target = ExampleTarget()
    with pytest.raises(StbDataError, match=r"group: got 'G4_instruction'"):
        run_group(target, "G4_instruction", benchmarks_dir, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"api: not given and no cache_dir"):
        run_group(target, "G1_tool", benchmarks_dir)
    with pytest.raises(ValueError, match=r"api: given together with cache_dir/simulator"):
        run_group(target, "G1_tool", benchmarks_dir, api="http://127.0.0.1:9", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"item_ids: \['nope'\] are not queries of G1_tool"):
        run_group(target, "G1_tool", benchmarks_dir, cache_dir=tmp_path, item_ids=["nope"])
    with pytest.raises(ValueError, match=r"mode: got 'bfs'"):
        run_group(target, "G1_tool", benchmarks_dir, cache_dir=tmp_path, mode="bfs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"workers: got 0"):
        run_group(target, "G1_tool", benchmarks_dir, cache_dir=tmp_path, workers=0)
