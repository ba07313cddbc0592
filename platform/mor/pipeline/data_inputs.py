"""What a run records of the data it trained on or wrote: MLflow's dataset input (name, digest, source, profile with
counts and token statistics, the samples' schema), the manifest and a sample of rendered rows as artifacts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mor.data.samples import role_segments, sample_rows
from mor.registry import TrackingSession

__all__ = ["SAMPLES_SCHEMA", "log_data_input"]

#: The samples file's columns in MLflow's column-spec form (the dataset input's schema).
SAMPLES_SCHEMA: dict[str, Any] = {
    "mlflow_colspec": [
        {"type": "tensor", "name": "input_ids", "tensor-spec": {"dtype": "int32", "shape": [-1]}},
        {"type": "tensor", "name": "role_ids", "tensor-spec": {"dtype": "int16", "shape": [-1]}},
        {"type": "tensor", "name": "labels", "tensor-spec": {"dtype": "int32", "shape": [-1]}},
        {"type": "string", "name": "trajectory_id", "required": True},
        {"type": "string", "name": "source", "required": True},
    ]
}


def log_data_input(
    session: TrackingSession,
    *,
    name: str,
    digest: str,
    source: Path,
    profile: Mapping[str, Any],
    context: str,
    samples: Path | None = None,
    tokenizer: Any = None,
    roles: Sequence[str] = (),
    manifest: Path | None = None,
    rows: int = 20,
) -> None:
    """Log the data set as the run's dataset input; with `samples` (and the `tokenizer` and `roles` they were
    rendered with), its first `rows` rows go to `data/sample_rows.json` decoded into role segments."""
    session.log_dataset_input(
        name=name,
        digest=digest,
        source=str(source),
        profile=profile,
        context=context,
        schema=SAMPLES_SCHEMA if samples is not None else None,
    )
    if manifest is not None and manifest.is_file():
        session.log_artifact(manifest, "data")
    if samples is not None and samples.is_file() and tokenizer is not None:
        preview = [
            {
                "trajectory_id": row["trajectory_id"],
                "source": row["source"],
                "tokens": len(row["input_ids"]),
                "segments": role_segments(row, tokenizer, roles),
            }
            for row in sample_rows(samples, rows)
        ]
        session.log_text(json.dumps(preview, indent=2, ensure_ascii=False), "data/sample_rows.json")
