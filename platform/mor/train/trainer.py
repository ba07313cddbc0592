"""Building the Ray Train trainer for a job (without running it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mor.spec import TrainJobSpec
from mor.train.loop import train_loop_per_worker
from mor.train.sinks import MetricsSink, ProgressSink

__all__ = ["TrainInputs", "build_trainer"]


@dataclass
class TrainInputs:
    """What the data stage hands to training: a base-model directory and encoded samples."""

    base_dir: Path
    samples_path: Path
    pad_token_id: int


def build_trainer(
    spec: TrainJobSpec,
    inputs: TrainInputs,
    *,
    storage_path: Path | str,
    run_name: str,
    metrics_sink: MetricsSink | None = None,
    progress_sink: ProgressSink | None = None,
    cpus_per_worker: int = 1,
):  # -> ray.train.torch.TorchTrainer (ray is imported lazily: building a spec never needs it)
    """A TorchTrainer for the spec's training stage; call `.fit()` to run it on the connected Ray cluster.

    `train.use_gpu` gives each worker one GPU and the NCCL backend; on CPU the workers use gloo. Precision,
    gradient checkpointing, accumulation and the DDP/FSDP strategy take effect in the workers (the spec travels in
    `train_loop_config`).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    train = spec.train
    return TorchTrainer(  # [Ray] the distributed trainer
        train_loop_per_worker,
        train_loop_config={
            "spec": spec.model_dump(mode="json", by_alias=True),
            "base_dir": str(inputs.base_dir),
            "samples_path": str(inputs.samples_path),
            "pad_token_id": inputs.pad_token_id,
            "threads_per_worker": cpus_per_worker,
            "metrics_sink": metrics_sink,
            "progress_sink": progress_sink,
        },
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),  # NCCL between GPUs, gloo on CPU
        scaling_config=ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker, "GPU": 1} if train.use_gpu else {"CPU": cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage_path),
            failure_config=FailureConfig(max_failures=train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
