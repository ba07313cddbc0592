"""jobs/paper-*.yaml: the paper's setting, validated by mor (no model is downloaded: a hub base is only named)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deploy.paths import REPO

PAPER = {
    "paper-llama-3.2-1b.yaml": "meta-llama/Llama-3.2-1B-Instruct",
    "paper-phi-3.5-mini.yaml": "microsoft/Phi-3.5-mini-instruct",
}


@pytest.mark.parametrize(("name", "hub"), PAPER.items())
def test_paper_specs_hold_the_paper_setting(name: str, hub: str) -> None:
    from mor.spec import load_spec

    spec = load_spec(REPO / "jobs" / name)
    assert spec.base_model.hub == hub and spec.base_model.dtype == "bfloat16"
    assert spec.mor.rank == 16
    assert spec.mor.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert {role: (r.routed, r.top_k, r.shared) for role, r in spec.mor.roles.items()} == {
        "reasoner": (4, 3, True),
        "executor": (4, 3, True),
        "summarizer": (3, 2, True),
    }
    assert spec.train.lr == pytest.approx(5e-5) and spec.train.epochs == 4
    assert spec.train.use_gpu and spec.train.precision == "bf16"
    formats = [next(iter(source.model_dump(exclude_none=True))) for source in spec.data.sources]
    assert formats == ["toolbench", "glaive", "sharegpt", "toolace", "xlam"]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_mor_job_validate_accepts_them(name: str) -> None:
    from mor.cli.main import app

    result = CliRunner().invoke(app, ["job", "validate", str(REPO / "jobs" / name)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
