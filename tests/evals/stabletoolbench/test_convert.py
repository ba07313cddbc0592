"""Answers in the benchmark's converted format (the upstream example answers, read in place) as judge inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mor.evals.stabletoolbench import RuleBasedJudge, StbDataError, judge_input_from_converted, read_converted

MODELS = ("virtual_chatgpt_cot", "virtual_chatgpt_dfs")


def _examples(benchmarks_dir: Path) -> Path:
    return benchmarks_dir / "stabletoolbench" / "data_example"


def test_converted_answers_become_judge_inputs(benchmarks_dir: Path) -> None:
    path = _examples(benchmarks_dir) / "model_predictions_converted" / "virtual_chatgpt_cot" / "G1_instruction.json"
    answers = {answer.id: answer for answer in read_converted(path)}
    assert sorted(answers) == ["1073", "588", "608"]
    birthday = answers["1073"]
    assert birthday.method == "CoT@1"
    task = birthday.judge_input
    assert task.query.startswith("I want to plan a surprise birthday party")
    assert task.finish_type == "give_answer" and task.answer.startswith("For the search query 'birthday party ideas'")
    assert [(step.name, step.kind) for step in task.steps] == [
        ("popularsitesforquery_for_keyword_analysis", "api"),
        ("querykeywords_for_keyword_analysis", "api"),
        ("Finish", "finish"),
    ]
    assert task.steps[0].arguments == {"q": "birthday party ideas"} and "pinterest.com" in task.steps[0].observation
    assert "Finish" in task.tool_names and len(task.tool_names) == 4
    messi = answers["588"].judge_input  # this run never called Finish
    assert (messi.answer, messi.finish_type, len(messi.steps)) == (None, None, 6)


def test_the_rule_based_judge_agrees_with_the_published_labels_of_the_examples(benchmarks_dir: Path) -> None:
    for model in MODELS:
        answers = read_converted(
            _examples(benchmarks_dir) / "model_predictions_converted" / model / "G1_instruction.json"
        )
        published = json.loads(
            (_examples(benchmarks_dir) / "pass_rate_results" / model / f"G1_instruction_{model}.json").read_text()
        )
        for answer in answers:
            votes = Counter(published[answer.id]["is_solved"].values())
            published_solved = votes["AnswerStatus.Solved"] > votes["AnswerStatus.Unsolved"]
            verdict = RuleBasedJudge().judge(answer.judge_input)
            assert verdict.passed == published_solved, (model, answer.id, verdict)
            assert verdict.kind == "rule-based"


def test_unreadable_converted_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(StbDataError, match=r"no such file"):
        read_converted(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": {"query": "q"}}')
    with pytest.raises(StbDataError, match=r"query 1: expected \{query, available_tools, answer"):
        read_converted(bad)


def _entry(final_answer: str, tool: str = "f_for_t") -> dict[str, object]:
    call = {"name": tool, "arguments": '{"x": 1}', "response": '{"error": "boom", "response": ""}'}
    return {
        "query": "q",
        "available_tools": [{"name": "f_for_t"}, {"name": "Finish"}],
        "answer": {
            "final_answer": final_answer,
            "answer_details": [
                {"role": "system", "message": "", "next": [{"role": "tool", "message": call, "next": []}]}
            ],
        },
    }


def test_give_ups_raw_answers_errors_and_unknown_functions_are_read() -> None:
    give_up = judge_input_from_converted(_entry('{"return_type": "give_up_and_restart"}'))
    assert (give_up.answer, give_up.finish_type, give_up.has_answer) == (None, "give_up", False)
    raw = judge_input_from_converted(_entry("plain text answer"))
    assert (raw.answer, raw.finish_type) == ("plain text answer", "give_answer")
    assert [(s.kind, s.error, s.arguments) for s in raw.steps] == [("api", "boom", {"x": 1})]
    unknown = judge_input_from_converted(_entry("", tool="made_up"))
    assert [(s.kind, s.error) for s in unknown.steps] == [("invalid", "boom")]
