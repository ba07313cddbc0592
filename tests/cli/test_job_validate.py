from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mor.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_validate_accepts_the_quickstart() -> None:
    result = CliRunner().invoke(app, ["job", "validate", str(REPO / "jobs" / "quickstart.yaml")])
    assert result.exit_code == 0, result.output
    assert "quickstart.yaml: valid" in result.output
    assert "mor-agent@candidate" in result.output


def test_every_example_spec_is_valid() -> None:
    specs = sorted((REPO / "jobs").glob("[!.]*.yaml"))
    assert len(specs) >= 2
    for spec in specs:
        result = CliRunner().invoke(app, ["job", "validate", str(spec)])
        assert result.exit_code == 0, f"{spec.name}: {result.output}"


def test_validate_refuses_with_every_problem(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "kind: train\nname: Bad Name\nbase_model: {builtin: tiny-llama}\n"
        "data: {sources: [{synthetic: {}}]}\ntrain: {workers: 0}\n"
    )
    result = CliRunner().invoke(app, ["job", "validate", str(spec)])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.output
    assert "name: got 'Bad Name': string should match pattern '^[a-z0-9]" in result.output
    assert "train.workers: got 0" in result.output
