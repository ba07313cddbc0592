"""The Ray Train configuration `build_trainer` builds for a spec, inspected without a cluster or a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mor.cluster import ClusterInfo
from mor.spec import TrainJobSpec, parse_spec
from mor.train import TrainInputs, build_trainer

if TYPE_CHECKING:  # Ray is imported only by the tests that run: see tests/conftest.py (token settings)
    from ray.train.torch import TorchTrainer

# Building a TorchTrainer loads Ray in this process; `local_cluster` first puts the session cluster's token settings
# in the environment (Ray reads them once per process), so later tests can still connect to it.

SPEC = """\
kind: train
name: config
base_model: {builtin: tiny-llama, dtype: bfloat16}
data: {sources: [{synthetic: {tools: 8, trajectories: 50}}]}
train: {workers: 4}
"""


def _trainer(spec: TrainJobSpec, tmp_path: Path, cpus_per_worker: int = 2) -> TorchTrainer:
    inputs = TrainInputs(base_dir=tmp_path / "base", samples_path=tmp_path / "samples.jsonl", pad_token_id=0)
    return build_trainer(
        spec, inputs, storage_path=tmp_path / "storage", run_name="config", cpus_per_worker=cpus_per_worker
    )


def test_gpu_spec_builds_nccl_workers_with_one_gpu_each(local_cluster: ClusterInfo, tmp_path: Path) -> None:
    from ray.train.torch import TorchTrainer

    spec = parse_spec(
        SPEC.replace(
            "workers: 4",
            "workers: 4, use_gpu: true, precision: fp16, strategy: fsdp, grad_accum_steps: 4, "
            "gradient_checkpointing: true",
        )
    )
    trainer = _trainer(spec, tmp_path)
    assert isinstance(trainer, TorchTrainer)
    assert trainer.backend_config.backend == "nccl"
    scaling = trainer.scaling_config
    assert scaling.use_gpu is True and scaling.num_workers == 4
    assert scaling.resources_per_worker == {"CPU": 2, "GPU": 1}
    train = trainer.train_loop_config["spec"]["train"]
    assert (train["precision"], train["strategy"], train["grad_accum_steps"], train["gradient_checkpointing"]) == (
        "fp16",
        "fsdp",
        4,
        True,
    )
    assert trainer.train_loop_config["spec"]["base_model"]["dtype"] == "bfloat16"
    assert TrainJobSpec.model_validate(trainer.train_loop_config["spec"]) == spec, "the workers rebuild the same spec"


def test_cpu_spec_builds_gloo_workers(local_cluster: ClusterInfo, tmp_path: Path) -> None:
    trainer = _trainer(parse_spec(SPEC.replace("workers: 4", "workers: 4, precision: bf16")), tmp_path, 1)
    assert trainer.backend_config.backend == "gloo"
    assert trainer.scaling_config.use_gpu is False
    assert trainer.scaling_config.resources_per_worker == {"CPU": 1}
    assert trainer.train_loop_config["spec"]["train"]["strategy"] == "ddp"
    assert trainer.train_loop_config["threads_per_worker"] == 1
