"""Data-parallel wrapping of a MoR model through Ray Train: DDP, or FSDP sharding the frozen base.

With FSDP every decoder layer of the base is its own shard unit, so a worker holds only its share of the frozen
weights outside the layer it is running. The adapters are left out of FSDP (`ignored_states`): they are small, stay
whole on every worker (the orthogonality loss and the checkpoints read them as full tensors) and their gradients are
averaged by `average_gradients` once per optimizer step. FSDP renames the layers it wraps (`_fsdp_wrapped_module`);
`plain_module_names` lifts the wrappers out while the adapters are saved, so checkpoints load into a plain base.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from mor.model import AdapterModel

__all__ = ["Strategy", "average_gradients", "fsdp_kwargs", "plain_module_names", "prepare_mor_model"]

Strategy = Literal["ddp", "fsdp"]


def _decoder_layer_classes(mor_model: AdapterModel) -> set[type[nn.Module]]:
    names = set(getattr(mor_model.base_model, "_no_split_modules", None) or [])
    return {type(module) for module in mor_model.base_model.modules() if type(module).__name__ in names}


def fsdp_kwargs(mor_model: AdapterModel, device_id: torch.device | None = None) -> dict[str, Any]:
    """`FullyShardedDataParallel` arguments for a MoR (or LoRA) model: one shard unit per decoder layer (the base
    model's `_no_split_modules`), the trainable adapter parameters ignored by FSDP."""
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    kwargs: dict[str, Any] = {"ignored_states": [p for p in mor_model.parameters() if p.requires_grad]}
    layer_classes = _decoder_layer_classes(mor_model)
    if layer_classes:
        kwargs["auto_wrap_policy"] = ModuleWrapPolicy(layer_classes)
    if device_id is not None:
        kwargs["device_id"] = device_id
    return kwargs


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """Average the gradients of `parameters` over the default process group, in one flat all-reduce.

    A parameter without a gradient counts as a zero gradient, so every worker reduces the same shapes.
    """
    world = dist.get_world_size()
    if world == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    grads = [parameter.grad for parameter in parameters]
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


@contextmanager
def plain_module_names(model: nn.Module) -> Iterator[None]:
    """Inside the block, the FSDP wrappers inside `model` are lifted out of its module tree, so module names (and
    the keys `save_mor` writes) are those of the unwrapped model; they are put back on exit. Use between steps."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    lifted = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, FullyShardedDataParallel)
    ]
    for parent, name, child in lifted:
        setattr(parent, name, child.module)
    try:
        yield
    finally:
        for parent, name, child in reversed(lifted):
            setattr(parent, name, child)


def prepare_mor_model(
    mor_model: AdapterModel, strategy: Strategy
) -> tuple[nn.Module, Callable[[list[nn.Parameter]], None] | None]:
    """Move the model to this worker's device and wrap it for `strategy` (Ray Train's prepare_model).

    Returns the model to call and the gradient synchronisation the training step must run (FSDP's adapters), or
    None when the wrapper synchronises by itself (DDP) or there is a single worker.
    """
    import ray.train.torch

    if strategy == "ddp":
        # Every adapter parameter takes part in every forward (absent roles add an exact zero), so DDP needs no
        # unused-parameter search.
        return ray.train.torch.prepare_model(mor_model), None  # [Ray] DDP wrapper (and device placement)
    if strategy != "fsdp":
        raise ValueError(f"train.strategy: got {strategy!r}, expected ddp or fsdp")
    model = ray.train.torch.prepare_model(  # [Ray] FSDP wrapper (and device placement)
        mor_model, parallel_strategy="fsdp", parallel_strategy_kwargs=fsdp_kwargs(mor_model)
    )
    return model, average_gradients if model is not mor_model else None
