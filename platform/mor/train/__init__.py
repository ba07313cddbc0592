"""Distributed adapter training on Ray Train (MoR, or the plain-LoRA baseline): the per-worker loop, batching,
objective and checkpoints."""

from mor.train.batching import LengthGroupedBatchSampler
from mor.train.checkpoint import CheckpointCorruptError, TrainState, read_checkpoint, write_checkpoint
from mor.train.loop import load_samples, load_training_base, new_adapter_model, total_steps, train_loop_per_worker
from mor.train.objective import Objective, role_cross_entropy, role_label_counts
from mor.train.parallel import average_gradients, fsdp_kwargs, plain_module_names, prepare_mor_model
from mor.train.precision import autocast, base_load_dtype, grad_scaler
from mor.train.sinks import JsonlMetricsSink, MetricsSink, ProgressSink
from mor.train.step import TrainStep
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
    "TrainStep",
    "autocast",
    "average_gradients",
    "base_load_dtype",
    "build_trainer",
    "fsdp_kwargs",
    "grad_scaler",
    "load_samples",
    "load_training_base",
    "new_adapter_model",
    "plain_module_names",
    "prepare_mor_model",
    "read_checkpoint",
    "role_cross_entropy",
    "role_label_counts",
    "total_steps",
    "train_loop_per_worker",
    "write_checkpoint",
]
