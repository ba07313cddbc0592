"""`kind: data` jobs: the data stage on the shared samples stored as a named, versioned data set, read back by a
train job (`{dataset: NAME@VERSION}`), shown by `mor data inspect`, and tracked in MLflow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mor.cli.main import app
from mor.pipeline.data_job import run_data_job
from mor.pipeline.prepare import prepare_training
from mor.spec import DataJobSpec, TrainJobSpec, parse_spec
from mor_testing import settings_for, shared_dataset


def _data_spec(tmp_path: Path) -> DataJobSpec:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    answers = shared_dataset("toolbench") / "data_example" / "answer"
    (tmp_path / "broken.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    text = (
        "kind: data\nname: tool-mix\ndata:\n  sources:\n"
        f"    - sharegpt: {{path: {glaive}, limit: 80}}\n"
        f"    - toolbench: {{path: {answers}}}\n"
        "    - openai_messages: {path: broken.jsonl}\n"
        "  test_fraction: 0.25\n  seed: 1\n"
    )
    spec = parse_spec(text, source="data.yaml", spec_dir=tmp_path)
    assert isinstance(spec, DataJobSpec)
    return spec


def test_a_data_job_stores_versions_that_a_train_job_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path / "home")
    spec = _data_spec(tmp_path)
    first = run_data_job(spec, settings, job_id="data-1")
    assert (first.name, first.version, first.malformed) == ("tool-mix", 1, 1)  # the line that is not JSON
    manifest = json.loads((Path(first.directory) / "manifest.json").read_text())
    assert manifest["train"] == first.train and manifest["test"] == first.test and first.train > 50
    assert manifest["by_source"].keys() == {"sharegpt", "toolbench"}  # the one chat has no agent turn
    assert [source["without_agent_turns"] for source in manifest["sources"]] == [0, 0, 1]
    assert manifest["turns_by_role"]["executor"] > 0 and manifest["missing"]["thought"] > 0
    assert json.loads(first.to_line().removeprefix("MOR_SUMMARY "))["kind"] == "data"
    second = run_data_job(spec, settings)
    assert second.version == 2 and (second.train, second.test) == (first.train, first.test)

    runs = MlflowClient(settings.tracking_uri).search_runs(
        [MlflowClient(settings.tracking_uri).get_experiment_by_name("tool-mix").experiment_id]
    )
    assert {run.data.tags["mor.dataset"] for run in runs} == {"tool-mix@1", "tool-mix@2"}
    inputs = {run.inputs.dataset_inputs[0].dataset.name: run.inputs.dataset_inputs[0] for run in runs}
    written = inputs["tool-mix@1"]
    assert json.loads(written.dataset.profile)["train"] == first.train
    assert [(tag.key, tag.value) for tag in written.tags] == [("mlflow.data.context", "written")]

    text = "kind: train\nname: t\nbase_model: {builtin: tiny-llama}\ndata: {sources: [{dataset: tool-mix@1}]}\n"
    train_spec = parse_spec(text, source="train.yaml")
    assert isinstance(train_spec, TrainJobSpec)
    prepared = prepare_training(train_spec, settings.cache_dir, datasets_dir=settings.datasets_dir)
    assert len(prepared.dataset.train) == first.train and len(prepared.dataset.test) == first.test
    assert prepared.samples > 0

    monkeypatch.setenv("MOR_HOME", str(settings.home))
    shown = CliRunner().invoke(app, ["data", "inspect", "tool-mix@1", "--samples", "1"], terminal_width=160)
    assert shown.exit_code == 0, shown.output
    assert "tool-mix@1" in shown.output and "source sharegpt" in shown.output and "<|reasoner|>" in shown.output
    assert "role samples" in shown.output and "learned tokens by role" in shown.output
    assert re.search(r"\d+ samples, \d+ tokens \(\d+ learned\)", shown.output)
    listed = CliRunner().invoke(app, ["data", "inspect", "tool-mix", "--json"])
    assert json.loads(listed.output)["version"] == 2
    missing = CliRunner().invoke(app, ["data", "inspect", "nothing@3"])
    assert missing.exit_code == 2 and "no data set named 'nothing'" in missing.output


def test_a_data_job_over_thousands_of_records_reports_its_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conversations = json.loads(
        (shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json").read_text()
    )
    with (tmp_path / "many.jsonl").open("w") as handle:
        for index in range(2400):  # past the every-1000-records progress reports of both passes
            record = json.loads(json.dumps(conversations[index % len(conversations)]))
            for turn in record["conversations"]:
                if turn["from"] == "human":
                    turn["value"] += f" (request {index})"
            handle.write(json.dumps(record) + "\n")
    text = "kind: data\nname: many\ndata: {sources: [{sharegpt: {path: many.jsonl}}]}\nrender: null\n"
    spec = parse_spec(text, source="data.yaml", spec_dir=tmp_path)
    assert isinstance(spec, DataJobSpec)
    written = run_data_job(spec, settings_for(tmp_path / "home"))
    assert written.train + written.test > 2300 and written.samples == 0  # a few fail verification
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("MOR_PROGRESS ")]
    metrics = [json.loads(line.removeprefix("MOR_PROGRESS "))["metrics"] for line in lines]
    assert {"read_records": 2000.0} in metrics and {"check_records": 2000.0} in metrics
