"""`mor eval score bfcl/CATEGORY --results FILE.jsonl` through Typer's CliRunner (mounted as the lead does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mor.cli.eval_score import score_command
from mor.evals.bfcl import BfclItem, reference_output


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("score")(score_command)

    @app.callback()
    def _root() -> None:
        """Mount point, as `mor eval` is."""

    return app


def _output(item: BfclItem) -> object:
    if item.ground_truth is None:  # live_relevance: any call is right
        return [{item.functions[0]["name"]: {}}]
    return reference_output(item)


def _results(tmp_path: Path, items: list[BfclItem]) -> Path:
    rows = [{"id": item.id, "result": _output(item)} for item in items[:-1]]
    rows.append({"id": items[-1].id, "result": "Sorry, no function fits."})
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_score_prints_accuracy_and_verdicts(
    tmp_path: Path, benchmarks_dir: Path, items_of: Callable[[str], list[BfclItem]]
) -> None:
    items = items_of("live_parallel")
    path = _results(tmp_path, items)
    result = CliRunner().invoke(
        _app(),
        ["score", "bfcl/live_parallel", "--results", str(path), "--data-dir", str(benchmarks_dir)],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "bfcl/live_parallel: accuracy 93.75% (15/16)" in result.output
    assert "unparseable" in result.output and items[-1].id in result.output


def test_score_json_output(tmp_path: Path, benchmarks_dir: Path, items_of: Callable[[str], list[BfclItem]]) -> None:
    items = items_of("live_parallel")
    path = _results(tmp_path, items)
    result = CliRunner().invoke(
        _app(), ["score", "bfcl/live_parallel", "--results", str(path), "--data-dir", str(benchmarks_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["category"], data["correct"], data["total"]) == ("live_parallel", 15, 16)
    assert data["accuracy"] == pytest.approx(15 / 16)
    assert data["items"][-1]["reason"] == "unparseable" and data["items"][0]["passed"] is True


def test_score_reads_the_data_dir_from_the_setting(
    tmp_path: Path, benchmarks_dir: Path, items_of: Callable[[str], list[BfclItem]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _results(tmp_path, items_of("live_relevance"))
    monkeypatch.setenv("MOR_BENCHMARKS_DIR", str(benchmarks_dir))
    result = CliRunner().invoke(_app(), ["score", "bfcl/live_relevance", "--results", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["correct"] == 15


def test_score_errors_name_the_problem_and_a_fix(
    tmp_path: Path, benchmarks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()

    def said(result: object) -> str:
        return " ".join(result.output.split())  # type: ignore[attr-defined]

    monkeypatch.delenv("MOR_BENCHMARKS_DIR", raising=False)
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "simple_python_0", "result": []}\n')
    no_data = runner.invoke(_app(), ["score", "bfcl/simple_python", "--results", str(path)])
    assert no_data.exit_code == 2 and "MOR_BENCHMARKS_DIR is not set" in said(no_data)
    data = ["--data-dir", str(benchmarks_dir)]
    wrong_suite = runner.invoke(_app(), ["score", "stabletoolbench/G1_tool", "--results", str(path), *data])
    assert wrong_suite.exit_code == 2 and "only BFCL result files" in said(wrong_suite)
    wrong_category = runner.invoke(_app(), ["score", "bfcl/simple", "--results", str(path), *data])
    assert wrong_category.exit_code == 2 and "simple_python" in said(wrong_category)
    foreign = runner.invoke(_app(), ["score", "bfcl/multiple", "--results", str(path), *data])
    assert foreign.exit_code == 2 and "'simple_python_0' is not an item of multiple" in said(foreign)
    missing = runner.invoke(_app(), ["score", "bfcl/multiple", "--results", str(tmp_path / "none.jsonl"), *data])
    assert missing.exit_code == 2 and "is not a file" in said(missing)
