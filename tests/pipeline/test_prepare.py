"""The data stage of a train job with decontamination: training items that copy BFCL questions or the held-out set
are dropped before encoding, and the report says which evaluation item each one copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.evals.bfcl.data import load_items
from mor.pipeline.prepare import prepare_training
from mor.spec import TrainJobSpec, parse_spec
from mor_testing import benchmarks_dir


def _chat(query: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": query}, {"role": "assistant", "content": "Done."}]})


def _spec(tmp_path: Path, decontaminate: str) -> TrainJobSpec:
    text = (
        "kind: train\nname: t\nbase_model: {builtin: tiny-llama}\n"
        "data:\n  sources:\n    - openai_messages: {path: chats.jsonl}\n"
        f"  test_fraction: 0.0\n  decontaminate: {decontaminate}\n"
    )
    spec = parse_spec(text, source="spec.yaml", spec_dir=tmp_path)
    assert isinstance(spec, TrainJobSpec)
    return spec


def test_training_items_copying_bfcl_questions_are_dropped(tmp_path: Path) -> None:
    data_dir = benchmarks_dir("bfcl")
    copied = [item for item in load_items("simple_python", data_dir)[:3]]
    queries = [copied[0].question, copied[1].question.upper(), "Tell me a joke about cats, please, a long one."]
    queries += [copied[2].question, f"Please plan a trip for a family of {2 + 1} to the mountains this spring."]
    (tmp_path / "chats.jsonl").write_text("\n".join(_chat(query) for query in queries) + "\n")
    spec = _spec(tmp_path, "{bfcl: [simple_python], stabletoolbench: []}")
    prepared = prepare_training(spec, tmp_path / "cache", benchmarks_dir=data_dir)
    report = prepared.decontamination
    assert report is not None and report["checked"] == 5 and report["dropped"] == 3
    assert [(row["item_id"], row["kind"]) for row in report["items"]] == [(item.id, "exact") for item in copied]
    assert len(prepared.dataset.train) == 2 and prepared.samples == 2

    with pytest.raises(ValueError, match="data.decontaminate: .*MOR_BENCHMARKS_DIR"):
        prepare_training(spec, tmp_path / "cache", benchmarks_dir=None)
