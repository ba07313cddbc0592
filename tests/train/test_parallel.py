"""Data-parallel training steps in two real processes (gloo on CPU): DDP with no_sync on the accumulating
micro-batches, and the FSDP configuration the GPU path uses (base sharded per decoder layer, adapters averaged by
hand) give the average of each worker's own step. Ray's prepare_model wraps in FSDP only with CUDA, so here FSDP is
built directly from the same `fsdp_kwargs`."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_step import _base, _mor_model, _samples
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from mor.data import collate
from mor.model import MoRModel, load_mor, save_mor
from mor.train import TrainStep, average_gradients, fsdp_kwargs, plain_module_names

WORLD = 2


def _windows() -> list[list[dict[str, torch.Tensor]]]:
    """Each rank's two micro-batches (sequences of different lengths and label counts)."""
    samples = _samples()
    return [
        [collate([samples[0]], pad_token_id=0), collate([samples[1], samples[2]], pad_token_id=0)],
        [collate([samples[3], samples[1]], pad_token_id=0), collate([samples[2]], pad_token_id=0)],
    ]


def _sgd_step(model: torch.nn.Module, mor_model: MoRModel, sync=None) -> TrainStep:
    trainable = [p for p in mor_model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return TrainStep(
        model=model,
        mor_model=mor_model,
        optimizer=optimizer,
        scheduler=scheduler,
        aux_weight=0.01,
        orth_weight=0.01,
        grad_clip=1e9,
        sync_gradients=sync,
    )


def _adapters(mor_model: MoRModel) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in mor_model.adapter_state_dict().items()}


def _worker(rank: int, strategy: str, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        mor_model = _mor_model()
        sync_flags: list[bool] = []
        if strategy == "ddp":
            model = torch.nn.parallel.DistributedDataParallel(mor_model)
            mor_model.register_forward_pre_hook(lambda *_: sync_flags.append(model.require_backward_grad_sync))
            sync = None
        else:
            model = torch.distributed.fsdp.FullyShardedDataParallel(
                mor_model, **fsdp_kwargs(mor_model, device_id=torch.device("cpu"))
            )
            sync = average_gradients
        step = _sgd_step(model, mor_model, sync)
        step(_windows()[rank])
        with plain_module_names(mor_model):  # what the training loop saves checkpoints through
            adapters = _adapters(mor_model)
            save_mor(mor_model, Path(out) / f"adapter{rank}")
        names_restored = any("_fsdp_wrapped_module" in name for name, _ in mor_model.named_modules())
        local_base = sum(p.numel() for p in mor_model.parameters() if not p.requires_grad)
        torch.save(
            {
                "adapters": adapters,
                "sync_flags": sync_flags,
                "frozen_numel": local_base,
                "wrapped": type(model).__name__,
                "names_restored": names_restored,
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _expected() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Adapters before the step, and after one SGD step on the average of each rank's own window gradient."""
    grads = []
    before: dict[str, torch.Tensor] = {}
    for window in _windows():
        mor_model = _mor_model()
        before = _adapters(mor_model)
        step = _sgd_step(mor_model, mor_model)
        step.accumulate(window)
        step.update()
        grads.append({name: before[name] - value for name, value in _adapters(mor_model).items()})
    return before, {name: before[name] - (grads[0][name] + grads[1][name]) / WORLD for name in before}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_workers_step_on_their_averaged_window_gradients(strategy: str, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(strategy, _free_port(), str(tmp_path)), nprocs=WORLD)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    torch.set_num_threads(1)
    before, expected = _expected()
    moved = max(float((expected[name] - before[name]).abs().max()) for name in before)
    assert moved > 1e-3
    for rank, result in enumerate(results):
        difference = max(float((result["adapters"][name] - expected[name]).abs().max()) for name in expected)
        assert difference < 1e-5 * moved, f"{strategy}: {difference}"
        reloaded = _adapters(load_mor(_base(), tmp_path / f"adapter{rank}"))  # the saved adapter fits a plain base
        assert all(torch.equal(reloaded[name], result["adapters"][name]) for name in expected)
    if strategy == "ddp":
        assert [r["sync_flags"] for r in results] == [[False, True]] * WORLD, "no_sync on the first micro-batch only"
    else:
        assert {r["wrapped"] for r in results} == {"FullyShardedDataParallel"}
        assert all(r["names_restored"] for r in results), "the FSDP wrappers are back after saving"
        whole = sum(p.numel() for p in _mor_model().parameters() if not p.requires_grad)
        assert all(r["frozen_numel"] < 0.75 * whole for r in results), "each worker holds a share of the base"


def test_fsdp_configuration_shards_decoder_layers_and_leaves_adapters_out() -> None:
    mor_model = _mor_model()
    kwargs = fsdp_kwargs(mor_model)
    assert {id(p) for p in kwargs["ignored_states"]} == {id(p) for p in mor_model.parameters() if p.requires_grad}
    assert len(kwargs["ignored_states"]) == 2 * 3 * len(list(mor_model.mor_layers()))
    policy = kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy) and policy._module_classes == {LlamaDecoderLayer}
    assert "device_id" not in kwargs  # Ray's prepare_model places the model on this worker's GPU first
