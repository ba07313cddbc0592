"""The per-worker training loop: plain PyTorch, with the Ray Train lines marked `# [Ray]`."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mor.data import collate
from mor.data.samples import read_samples
from mor.model import AdapterModel, apply_lora, apply_mor, count_parameters, load_adapter, save_adapter
from mor.spec import TrainJobSpec
from mor.train.batching import LengthGroupedBatchSampler
from mor.train.checkpoint import TrainState, read_checkpoint, write_checkpoint
from mor.train.parallel import plain_module_names, prepare_mor_model
from mor.train.precision import base_load_dtype
from mor.train.step import Batch, TrainStep

__all__ = ["train_loop_per_worker", "load_samples", "load_training_base", "new_adapter_model", "total_steps"]


def load_samples(path: str | Path) -> list[dict[str, list[int]]]:
    """Read encoded samples (a Parquet samples file, `mor.data.samples`: input_ids, role_ids, labels)."""
    return read_samples(path)


def total_steps(spec: TrainJobSpec, batches_per_epoch: int) -> int:
    """Optimizer steps the job will run; each takes `train.grad_accum_steps` of the epoch's micro-batches."""
    by_epochs = max(1, math.ceil(spec.train.epochs * batches_per_epoch / spec.train.grad_accum_steps))
    return min(by_epochs, spec.train.max_steps) if spec.train.max_steps else by_epochs


def load_training_base(base_dir: str | Path, spec: TrainJobSpec) -> torch.nn.Module:
    """The frozen base a worker trains on, loaded from `base_dir` in the spec's `base_model.dtype`."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=base_load_dtype(spec.base_model.dtype))


def new_adapter_model(base: torch.nn.Module, spec: TrainJobSpec) -> AdapterModel:
    """The untrained adapter the spec asks for on `base`: MoR (`mor.adapter: mor`) or the plain LoRA (`lora`)."""
    if spec.mor.adapter == "lora":
        return apply_lora(base, spec.mor.lora_config())
    return apply_mor(base, spec.mor.adapter_config())


def _lr_lambda(warmup: int, total: int) -> Any:
    def _factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    return _factor


def _batches(
    sampler: LengthGroupedBatchSampler, state: TrainState, samples: list[dict[str, list[int]]], pad_token_id: int
) -> Iterator[Batch]:
    epoch = state.epoch
    skip = state.batch_in_epoch
    while True:
        sampler.set_epoch(epoch, skip=skip)
        for offset, indices in enumerate(sampler):
            state.epoch, state.batch_in_epoch = epoch, skip + offset + 1
            yield collate([samples[i] for i in indices], pad_token_id=pad_token_id)
        epoch += 1
        skip = 0


def _save_adapter(mor_model: AdapterModel, path: Path) -> None:
    with plain_module_names(mor_model):  # FSDP's wrappers would otherwise rename the saved modules
        save_adapter(mor_model, path)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train the spec's adapter (MoR or the plain LoRA) on this worker's share of the samples; resumes from Ray's
    latest checkpoint. Besides the losses it reports `trainable_params` and `train_seconds` (the loop's wall time
    on the steps done so far, summed over attempts when the worker group was restarted: the time of steps lost after
    the last checkpoint is not counted; see `resumed_from_step`).

    `config`: spec (dict), base_dir, samples_path, pad_token_id, threads_per_worker, and optional metrics_sink /
    progress_sink objects (used on rank 0 only).
    """
    import ray.train

    spec = TrainJobSpec.model_validate(config["spec"])
    context = ray.train.get_context()  # [Ray] rank and world size of this worker
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(int(config.get("threads_per_worker", 1)))
    torch.manual_seed(spec.train.seed)
    metrics_sink = config.get("metrics_sink") if rank == 0 else None
    progress_sink = config.get("progress_sink") if rank == 0 else None

    samples = load_samples(config["samples_path"])
    sampler = LengthGroupedBatchSampler(
        [len(s["input_ids"]) for s in samples],
        spec.train.batch_size,
        rank=rank,
        world_size=world,
        seed=spec.train.seed,
    )
    steps = total_steps(spec, len(sampler))
    accum = spec.train.grad_accum_steps
    base = load_training_base(config["base_dir"], spec)
    state = TrainState(step=0, epoch=0, batch_in_epoch=0, tokens_seen=0)
    resumed: dict[str, Any] | None = None
    checkpoint = ray.train.get_checkpoint()  # [Ray] latest checkpoint after a restart, else None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            adapter_dir, resumed, state = read_checkpoint(Path(directory))
            mor_model = load_adapter(base, adapter_dir)
    else:
        mor_model = new_adapter_model(base, spec)
    trainable_params = count_parameters(mor_model).trainable
    if spec.train.gradient_checkpointing:
        mor_model.gradient_checkpointing_enable()  # the routing plan is restored in the recomputation

    model, sync_gradients = prepare_mor_model(mor_model, spec.train.strategy)  # [Ray] DDP/FSDP wrapper, device
    model.train()
    # Built after the model is on its device, so restored optimizer state lands on the parameters' device.
    trainable = [p for p in mor_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec.train.lr, weight_decay=spec.train.weight_decay)
    warmup = int(spec.train.warmup_ratio * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(warmup, steps))
    step = TrainStep(
        model=model,
        mor_model=mor_model,
        optimizer=optimizer,
        scheduler=scheduler,
        aux_weight=spec.mor.loss.aux_weight,
        orth_weight=spec.mor.loss.orth_weight,
        grad_clip=spec.train.grad_clip,
        precision=spec.train.precision,
        sync_gradients=sync_gradients,
    )
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if "scaler" in resumed and step.scaler.is_enabled():
            step.scaler.load_state_dict(resumed["scaler"])
    resumed_from, seconds_before = state.step, state.train_seconds

    batches = _batches(sampler, state, samples, int(config["pad_token_id"]))
    window_tokens, window_start = 0, time.perf_counter()
    started = time.perf_counter()
    while state.step < steps:
        micro_batches = [next(batches) for _ in range(accum)]
        objective, grad_norm = step(micro_batches)
        state.step += 1
        tokens = sum(int(batch["attention_mask"].sum()) for batch in micro_batches) * world
        state.tokens_seen += tokens
        window_tokens += tokens

        last = state.step >= steps
        if state.step % spec.train.log_every and state.step % spec.train.checkpoint_every and not last:
            continue
        elapsed = time.perf_counter() - window_start
        tokens_per_s = window_tokens / max(elapsed, 1e-9)
        window_tokens, window_start = 0, time.perf_counter()
        done_here = state.step - resumed_from
        eta = (time.perf_counter() - started) / max(done_here, 1) * (steps - state.step)
        metrics: dict[str, float] = {
            "loss": objective.total.item(),
            "ce": objective.ce.item(),
            "aux": objective.aux.item(),
            "orth": objective.orth.item(),
            "grad_norm": float(grad_norm),
            "lr": float(scheduler.get_last_lr()[0]),
            "tokens_per_s": tokens_per_s,
            "epoch": state.epoch + state.batch_in_epoch / max(1, len(sampler)),
            "step": float(state.step),
            "total_steps": float(steps),
            "eta_s": eta,
            "resumed_from_step": float(resumed_from),
            "trainable_params": float(trainable_params),
            "train_seconds": seconds_before + time.perf_counter() - started,
        }
        metrics.update({f"ce.{role}": value for role, value in objective.per_role_ce.items()})
        for role, loads in mor_model.router_stats().items():
            metrics.update({f"router.{role}.expert_{i}": float(load) for i, load in enumerate(loads)})
        if metrics_sink is not None:
            metrics_sink.log_metrics(metrics, step=state.step)
        if progress_sink is not None:
            progress_sink.report("train", state.step, steps, metrics)
        if state.step % spec.train.checkpoint_every == 0 or last:
            state.train_seconds = metrics["train_seconds"]
            with tempfile.TemporaryDirectory() as directory:
                if rank == 0:
                    write_checkpoint(
                        Path(directory),
                        save_adapter=lambda path: _save_adapter(mor_model, path),
                        optimizer=optimizer,
                        scheduler=scheduler,
                        state=state,
                        scaler=step.scaler,
                    )
                    ray.train.report(  # [Ray] metrics + checkpoint persisted to the run's storage
                        metrics, checkpoint=ray.train.Checkpoint.from_directory(directory)
                    )
                else:
                    ray.train.report(metrics, checkpoint=None)
        else:
            ray.train.report(metrics, checkpoint=None)  # [Ray] every worker reports the same number of times
