"""The end-of-job summary says plainly when the trained agent is no better than the untrained base."""

from __future__ import annotations

from rich.console import Console

from mor.cli.follow import summary_table, untrained_level_evals


def _summary(accuracy: float, baseline: float | None, verdict: str | None) -> dict[str, object]:
    result: dict[str, object] = {
        "suite": "synthetic",
        "run_id": 7,
        "items": 100,
        "metrics": {"accuracy": accuracy, "failures.executor": 85.0},
        "verdict": verdict,
    }
    result["baseline"] = None if baseline is None else {"accuracy": baseline, "run_id": 8, "reused": True}
    return {
        "job_name": "quickstart",
        "steps": 315,
        "train_seconds": 400.0,
        "final_loss": 0.98,
        "mlflow_run_id": "abc",
        "evals": [result],
    }


def _render(summary: dict[str, object]) -> str:
    console = Console(record=True, width=250)
    console.print(summary_table(summary, "sqlite:///x.db"))
    return console.export_text()


def test_an_agent_at_the_untrained_level_is_named_in_the_summary() -> None:
    summary = _summary(0.0, 0.0, "not_above_untrained")
    assert untrained_level_evals(summary) == ["synthetic: accuracy 0.000, untrained base 0.000"]
    text = _render(summary)
    assert "NO BETTER THAN THE UNTRAINED BASE" in text
    assert "untrained base" in text and "SQL run 8, stored result reused" in text


def test_a_trained_agent_above_the_baseline_is_not_flagged() -> None:
    summary = _summary(0.35, 0.0, "above_untrained")
    assert untrained_level_evals(summary) == []
    text = _render(summary)
    assert "NO BETTER" not in text and "accuracy 0.000" in text  # the baseline row is still shown


def test_a_summary_without_a_baseline_is_not_flagged() -> None:
    summary = _summary(0.0, None, None)
    assert untrained_level_evals(summary) == []
    assert "untrained" not in _render(summary)
