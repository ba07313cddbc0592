"""Distributed MoR training on Ray Train: the per-worker loop, batching, objective and checkpoints."""

from mor.train.batching import LengthGroupedBatchSampler
from mor.train.checkpoint import CheckpointCorruptError, TrainState, read_checkpoint, write_checkpoint
from mor.train.loop import load_samples, mor_config_from_spec, total_steps, train_loop_per_worker
from mor.train.objective import Objective, role_cross_entropy
from mor.train.sinks import JsonlMetricsSink, MetricsSink, ProgressSink
from mor.train.trainer import TrainInputs, build_trainer

__all__ = [
    "CheckpointCorruptError",
    "JsonlMetricsSink",
    "LengthGroupedBatchSampler",
    "MetricsSink",
    "Objective",
    "ProgressSink",
    "TrainInputs",
    "TrainState",
    "build_trainer",
    "load_samples",
    "mor_config_from_spec",
    "read_checkpoint",
    "role_cross_entropy",
    "total_steps",
    "train_loop_per_worker",
    "write_checkpoint",
]
