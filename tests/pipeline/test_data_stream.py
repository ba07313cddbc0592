"""The data stage on Ray Data: the same output as in-process, rendered role samples in the stored data set, reused
by a train job rendering alike, and recorded in MLflow with a sample of decoded rows."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mor.data.engine import LocalEngine, ray_engine, row
from mor.data.prepare import prepare_dataset
from mor.data.samples import read_samples
from mor.pipeline.data_job import run_data_job
from mor.pipeline.prepare import prepare_training
from mor.spec import DataJobSpec, TrainJobSpec, parse_spec
from mor_testing import settings_for, shared_dataset

pytestmark = pytest.mark.usefixtures("ray_connected")


def _spec(tmp_path: Path, extra: str = "") -> DataJobSpec:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    answers = shared_dataset("toolbench") / "data_example" / "answer"
    (tmp_path / "broken.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    text = (
        "kind: data\nname: tool-mix\ndata:\n  sources:\n"
        f"    - sharegpt: {{path: {glaive}, limit: 120}}\n"
        f"    - toolbench: {{path: {answers}, weight: 1.5}}\n"
        "    - openai_messages: {path: broken.jsonl}\n"
        "  test_fraction: 0.2\n  seed: 4\n  complete: {parts: [thought]}\n" + extra
    )
    spec = parse_spec(text, source="data.yaml", spec_dir=tmp_path)
    assert isinstance(spec, DataJobSpec)
    return spec


def test_ray_data_and_in_process_give_the_same_data_set(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    local = prepare_dataset(spec.data, tmp_path / "local", engine=LocalEngine())
    remote = prepare_dataset(spec.data, tmp_path / "ray", engine=ray_engine())
    for name in ("train.jsonl", "test.jsonl", "malformed.jsonl", "dropped.jsonl", "tools.json"):
        assert (local.directory / name).read_bytes() == (remote.directory / name).read_bytes(), name
    assert (local.report.pop("engine"), remote.report.pop("engine")) == ("local", "ray")
    assert local.report == remote.report
    sources = local.report["sources"]
    assert sources[1]["format"] == "toolbench" and sources[1]["completion"]["filled"]["thought by rule"] > 0
    assert sources[2]["malformed"] == 1 and len(local.train) > 80 and not list(local.directory.glob(".spool*"))


def test_actor_workers_keep_the_order(tmp_path: Path) -> None:
    def pids(item: dict) -> Iterator[dict]:  # local: pickled by value for the workers
        yield row("seen", item["source"], payload=str(os.getpid()))

    rows = [row("n", n) for n in range(300)]
    out = list(ray_engine().run(rows, pids, workers=2))
    assert [item["source"] for item in out] == list(range(300))
    assert 1 <= len({item["payload"] for item in out}) <= 2  # two long-lived actors at most


def test_a_data_job_renders_samples_a_train_job_reuses(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home")
    written = run_data_job(_spec(tmp_path), settings, job_id="data-1", engine=ray_engine())
    directory = Path(written.directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    samples = manifest["samples"]
    assert samples["roles"] == ["reasoner", "executor", "summarizer"] and samples["max_seq_len"] == 1024
    stats = samples["stats"]
    assert stats["sequences"] == written.samples == len(read_samples(directory / "samples.parquet"))
    assert stats["sequences"] + stats["fit"]["dropped"] == written.train and stats["tokens"] == written.tokens
    assert set(stats["learned_tokens_by_role"]) == {"reasoner", "executor", "summarizer"}
    assert (directory / "tokenizer" / "tokenizer.json").is_file() and manifest["engine"] == "ray"

    text = "kind: train\nname: t\nbase_model: {builtin: tiny-llama}\ndata: {sources: [{dataset: tool-mix@1}]}\n"
    same = parse_spec(text, source="train.yaml")
    assert isinstance(same, TrainJobSpec)
    prepared = prepare_training(same, settings.cache_dir, datasets_dir=settings.datasets_dir)
    assert prepared.reused_from == "tool-mix@1" and prepared.samples_path == directory / "samples.parquet"
    assert prepared.samples == stats["sequences"]
    longer = parse_spec(text + "train: {max_seq_len: 2048}\n", source="train.yaml")
    assert isinstance(longer, TrainJobSpec)
    rendered = prepare_training(longer, settings.cache_dir, datasets_dir=settings.datasets_dir)
    assert rendered.reused_from is None and rendered.samples_path.parent == settings.cache_dir / "samples"
    assert rendered.samples >= prepared.samples

    client = MlflowClient(settings.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tool-mix").experiment_id])
    (used,) = run.inputs.dataset_inputs
    assert json.loads(used.dataset.schema)["mlflow_colspec"][0]["name"] == "input_ids"
    assert json.loads(used.dataset.profile)["tokens"]["sequences"] == stats["sequences"]
    preview = json.loads(
        Path(client.download_artifacts(run.info.run_id, "data/sample_rows.json", str(tmp_path))).read_text()
    )
    assert len(preview) == 20 and {s["role"] for s in preview[0]["segments"] if s["learned"]} <= set(samples["roles"])
