"""Scoring outputs: hand-made wrong outputs fail for the right reason in every category; result files."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mor.evals.bfcl import (
    AST_CATEGORIES,
    BfclBenchmark,
    BfclItem,
    FailureReason,
    Language,
    ResultFileError,
    read_results,
    reference_output,
    score_item,
    score_results,
)

from .test_reference import REJECTED

Output = list[dict[str, dict[str, Any]]]


def _declared(item: BfclItem, name: str) -> dict[str, Any]:
    for function in item.functions:
        if function["name"] == name:
            return function["parameters"]
    return item.functions[0]["parameters"]


def _first_param(item: BfclItem, output: Output, wanted: Callable[[str, Any], bool]) -> tuple[str, str] | None:
    ((name, arguments),) = output[0].items()
    properties = _declared(item, name)["properties"]
    for param, value in arguments.items():
        if wanted(properties[param]["type"], value):
            return name, param
    return None


def _wrong(item: BfclItem, reason: FailureReason) -> Output | str | None:
    """A wrong output for `item` failing for `reason`, made from its ground truth; None if it has no such."""
    output = copy.deepcopy(reference_output(item))
    ((name, arguments),) = output[0].items()
    string_types = ("string", "String", "any")
    if reason is FailureReason.WRONG_FUNCTION:
        return [{f"not_{next(iter(call))}": next(iter(call.values()))} for call in output]
    if reason is FailureReason.MISSING_PARAMETER:
        required = [p for p in _declared(item, name).get("required", []) if p in arguments]
        if not required:
            return None
        del arguments[required[0]]
        return output
    if reason is FailureReason.UNEXPECTED_PARAMETER:
        arguments["zz_not_a_parameter"] = "x" if item.language is Language.PYTHON else '"x"'
        return output
    if reason is FailureReason.WRONG_TYPE:
        found = _first_param(item, output, lambda kind, value: kind in string_types and isinstance(value, str))
        if found is None:
            return None
        # Java and JavaScript values must be source-text strings; Python strings must be strings.
        arguments[found[1]] = 12345
        return output
    if reason is FailureReason.WRONG_VALUE:
        found = _first_param(item, output, lambda kind, value: kind in ("string", "String") and isinstance(value, str))
        if found is None:
            return None
        arguments[found[1]] = "zz unlikely value zz" if item.language is not Language.JAVASCRIPT else '"zz unlikely"'
        return output
    if reason is FailureReason.WRONG_COUNT:
        return [*output, copy.deepcopy(output[0])]
    if reason is FailureReason.NO_CALL:
        return []
    if reason is FailureReason.UNPARSEABLE:
        return "I am sorry, but I cannot call any function for that."
    raise AssertionError(reason)


AST_REASONS = [
    FailureReason.WRONG_FUNCTION,
    FailureReason.MISSING_PARAMETER,
    FailureReason.UNEXPECTED_PARAMETER,
    FailureReason.WRONG_TYPE,
    FailureReason.WRONG_VALUE,
    FailureReason.WRONG_COUNT,
    FailureReason.NO_CALL,
    FailureReason.UNPARSEABLE,
]


@pytest.mark.parametrize("reason", AST_REASONS, ids=lambda r: r.value)
@pytest.mark.parametrize("category", AST_CATEGORIES)
def test_hand_made_wrong_output_fails_for_the_right_reason(
    category: str, reason: FailureReason, items_of: Callable[[str], list[BfclItem]]
) -> None:
    for item in items_of(category):
        if item.id in REJECTED:
            continue
        output = _wrong(item, reason)
        if output is None:
            continue
        assert score_item(item, reference_output(item)).passed
        result = score_item(item, output)
        assert not result.passed
        assert result.reason is reason, (item.id, result)
        assert result.message
        return
    pytest.fail(f"no item of {category} admits a {reason.value} mutation")


@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance"])
def test_irrelevance_fails_a_call_and_passes_no_call(category: str, items_of: Callable[[str], list[BfclItem]]) -> None:
    item = items_of(category)[0]
    name = item.functions[0]["name"]
    called = score_item(item, [{name: {}}, {name: {"x": 1}}])
    assert not called.passed and called.reason is FailureReason.UNEXPECTED_CALL
    assert called.error_type == "irrelevance_error:decoder_success"
    for no_call in ([], [{}], "None of the functions can answer this.", f"[{name}(x=]"):
        assert score_item(item, no_call).passed, no_call
    # A raw string that decodes to a call is a call.
    assert not score_item(item, f"[{name}(query='weather')]").passed


def test_live_relevance_passes_any_call_and_fails_no_call(items_of: Callable[[str], list[BfclItem]]) -> None:
    items = items_of("live_relevance")
    for item in items:
        assert score_item(item, [{"made_up_function": {"anything": 1}}]).passed
    item = items[0]
    for no_call in ([], [{}], "I can't help with that."):
        result = score_item(item, no_call)
        assert not result.passed and result.reason is FailureReason.NO_CALL


def test_parallel_scoring_is_order_independent(items_of: Callable[[str], list[BfclItem]]) -> None:
    for item in items_of("parallel")[:50]:
        assert score_item(item, list(reversed(reference_output(item)))).passed, item.id


def test_a_python_int_for_a_float_passes_at_top_level_on_real_items(items_of: Callable[[str], list[BfclItem]]) -> None:
    checked = 0
    for item in items_of("simple_python"):
        ((name, arguments),) = reference_output(item)[0].items()
        properties = item.functions[0]["parameters"]["properties"]
        for param, value in arguments.items():
            if properties[param]["type"] == "float" and isinstance(value, float) and value.is_integer():
                as_int = {name: {**arguments, param: int(value)}}
                assert score_item(item, [as_int]).passed, item.id
                checked += 1
    assert checked > 10


def test_underscore_names_expect_dots_replaced(items_of: Callable[[str], list[BfclItem]]) -> None:
    item = next(i for i in items_of("simple_python") if "." in i.functions[0]["name"])
    ((name, arguments),) = reference_output(item)[0].items()
    output = [{name.replace(".", "_"): arguments}]
    assert not score_item(item, output).passed
    assert score_item(item, output, underscore_names=True).passed
    assert BfclBenchmark(underscore_names=True).score_item(item, output).passed


def test_score_results_counts_missing_items_as_failures(items_of: Callable[[str], list[BfclItem]]) -> None:
    items = items_of("live_parallel")
    rows = [{"id": item.id, "result": reference_output(item)} for item in items[:10]]
    rows.append({"id": items[10].id, "result": "not a call at all"})
    report = score_results(items, rows)
    assert (report.score.correct, report.score.total) == (10, 16)
    assert report.score.accuracy == pytest.approx(10 / 16)
    reasons = [item.reason for item in report.items]
    assert reasons[:10] == [None] * 10
    assert reasons[10] is FailureReason.UNPARSEABLE
    assert reasons[11:] == [FailureReason.MISSING_RESULT] * 5
    data = report.to_dict()
    assert data["correct"] == 10 and data["items"][11]["reason"] == "missing_result"


def test_score_results_rejects_foreign_and_duplicate_ids(items_of: Callable[[str], list[BfclItem]]) -> None:
    items = items_of("live_parallel")
    with pytest.raises(ResultFileError, match="'simple_python_0' is not an item of live_parallel"):
        score_results(items, [{"id": "simple_python_0", "result": []}])
    with pytest.raises(ResultFileError, match="appears twice"):
        score_results(items, [{"id": items[0].id, "result": []}, {"id": items[0].id, "result": []}])


def test_read_results_names_the_line_of_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(
        json.dumps({"id": "simple_python_0", "result": [{"f": {"x": 1}}], "latency": 0.2})
        + "\n\n"
        + json.dumps({"id": "simple_python_1", "result": "[f(x=2)]"})
        + "\n"
    )
    rows = read_results(path)
    assert [row["id"] for row in rows] == ["simple_python_0", "simple_python_1"]
    path.write_text(json.dumps({"id": "a", "result": []}) + "\n{not json\n")
    with pytest.raises(ResultFileError, match=r"results.jsonl:2: not JSON"):
        read_results(path)
    path.write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(ResultFileError, match=r"results.jsonl:1: expected an object with 'id' and 'result'"):
        read_results(path)
    with pytest.raises(ResultFileError, match="is not a file"):
        read_results(tmp_path / "missing.jsonl")


def test_benchmark_protocol_loads_and_scores(benchmarks_dir: Path) -> None:
    benchmark = BfclBenchmark()
    assert benchmark.name == "bfcl" and "live_relevance" in benchmark.categories
    items = benchmark.load_items("simple_javascript", benchmarks_dir)
    assert len(items) == 50 and items[0].question and items[0].functions
    result = benchmark.score_item(items[0], reference_output(items[0]))
    assert result.passed and result.to_dict()["reason"] is None
