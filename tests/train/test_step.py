"""The training step in one process: accumulation equals one big batch, mixed precision, checkpointing."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.data import collate
from mor.model import MoRModel, apply_mor
from mor.spec import parse_spec
from mor.train import TrainStep, base_load_dtype, total_steps

VOCAB = 61
ROLES = {name: {"routed": 2, "top_k": 1} for name in ("reasoner", "executor", "summarizer")}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one intra-op thread (`one_torch_thread` in tests/conftest.py)."""


def _base(dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).to(dtype)


def _mor_model(dtype: torch.dtype = torch.float32) -> MoRModel:
    model = apply_mor(_base(dtype), {"rank": 4, "roles": ROLES})
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # up-projections start at zero; random values make every gradient path count
        for name, parameter in model.named_parameters():
            if ".mor_roles." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.train()


def _samples() -> list[dict[str, list[int]]]:
    """Four sequences of different lengths and label counts (so 1/N averaging would not equal one big batch)."""
    generator = torch.Generator().manual_seed(2)
    samples = []
    for length, labelled_from in ((9, 2), (14, 3), (11, 8), (16, 5)):
        ids = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
        roles = torch.randint(0, 3, (length,), generator=generator).tolist()
        labels = [-100] * labelled_from + ids[labelled_from:]
        samples.append({"input_ids": ids, "role_ids": roles, "labels": labels})
    return samples


def _step(model: MoRModel, *, precision: str = "fp32", aux_weight: float = 0.0, lr: float = 1.0) -> TrainStep:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return TrainStep(
        model=model,
        mor_model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        aux_weight=aux_weight,
        orth_weight=0.01,
        grad_clip=1e9,
        precision=precision,  # type: ignore[arg-type]
    )


def _grads(model: MoRModel) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys() and a
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def test_accumulated_micro_batches_give_the_update_of_one_big_batch() -> None:
    samples = _samples()
    whole = [collate(samples, pad_token_id=0)]
    halves = [collate(samples[:2], pad_token_id=0), collate(samples[2:], pad_token_id=0)]

    big_model, accum_model = _mor_model(), _mor_model()
    big, accum = _step(big_model), _step(accum_model)
    big_objective = big.accumulate(whole)
    accum_objective = accum.accumulate(halves)
    big_grads, accum_grads = _grads(big_model), _grads(accum_model)
    scale = max(float(g.abs().max()) for g in big_grads.values())
    assert scale > 1e-3
    assert _max_difference(big_grads, accum_grads) < 1e-5 * scale
    assert float(accum_objective.ce) == pytest.approx(float(big_objective.ce), rel=1e-5)
    assert (
        accum_objective.label_tokens
        == big_objective.label_tokens
        == sum(sum(label != -100 for label in s["labels"][1:]) for s in samples)
    )
    assert accum_objective.per_role_ce == pytest.approx(big_objective.per_role_ce, rel=1e-5)

    # The update itself: SGD with lr 1 and no clipping moves each parameter by exactly its gradient.
    before = {n: p.detach().clone() for n, p in accum_model.named_parameters() if p.requires_grad}
    big.update()
    accum.update()
    after_big = {n: p.detach() for n, p in big_model.named_parameters() if p.requires_grad}
    after_accum = {n: p.detach() for n, p in accum_model.named_parameters() if p.requires_grad}
    assert _max_difference(after_big, after_accum) < 1e-5 * scale
    assert _max_difference({n: before[n] - accum_grads[n] for n in before}, after_accum) < 1e-6
    assert all(p.grad is None for p in accum.trainable), "gradients are cleared after the update"

    # The data discriminates: averaging the two halves' own losses (plain 1/N) gives other gradients.
    naive_model = _mor_model()
    naive = _step(naive_model)
    per_half = []
    for half in halves:
        naive.accumulate([half])
        per_half.append(_grads(naive_model))
        naive.optimizer.zero_grad(set_to_none=True)
    averaged = {n: (per_half[0][n] + per_half[1][n]) / 2 for n in per_half[0]}
    assert _max_difference(averaged, big_grads) > 1e-3 * scale


@pytest.mark.parametrize("impl", ["grouped", "fused"])
def test_bf16_autocast_keeps_float32_adapters_and_close_losses(impl: str) -> None:
    batches = [collate(_samples()[:2], pad_token_id=0), collate(_samples()[2:], pad_token_id=0)]
    fp32_model, bf16_model = _mor_model(), _mor_model()
    fp32_model.set_impl(impl)
    bf16_model.set_impl(impl)
    fp32 = _step(fp32_model, aux_weight=0.01).accumulate(batches)
    step = _step(bf16_model, aux_weight=0.01, precision="bf16")
    assert not step.scaler.is_enabled(), "bf16 needs no loss scaling"
    bf16 = step.accumulate(batches)
    assert torch.isfinite(bf16.total)
    assert float(bf16.ce) != float(fp32.ce), "autocast ran the matmuls in bf16"
    assert float(bf16.ce) == pytest.approx(float(fp32.ce), rel=2e-2)
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in step.trainable)
    grads_fp32, grads_bf16 = _grads(fp32_model), _grads(bf16_model)
    cosine = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g in grads_fp32.values()]),
        torch.cat([g.flatten() for g in grads_bf16.values()]),
        dim=0,
    )
    assert float(cosine) > 0.95  # not 1: a bf16 router logit can flip a top-1 choice


def test_gradient_checkpointing_leaves_accumulated_gradients_unchanged() -> None:
    batches = [collate(_samples()[:2], pad_token_id=0), collate(_samples()[2:], pad_token_id=0)]
    plain_model, checkpointed_model = _mor_model(), _mor_model()
    checkpointed_model.gradient_checkpointing_enable()
    calls = {"plain": 0, "checkpointed": 0}
    for key, model in (("plain", plain_model), ("checkpointed", checkpointed_model)):
        mlp = model.base_model.model.layers[0].mlp
        mlp.register_forward_pre_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
        _step(model, aux_weight=0.01).accumulate(batches)
    assert calls == {"plain": 2, "checkpointed": 4}, "each micro-batch's layer ran again in the backward pass"
    assert _max_difference(_grads(plain_model), _grads(checkpointed_model)) < 1e-6


def test_bfloat16_base_trains_float32_adapters() -> None:
    assert base_load_dtype("bfloat16") is torch.bfloat16 and base_load_dtype("auto") == "auto"
    model = _mor_model(torch.bfloat16)
    step = _step(model, precision="bf16", aux_weight=0.01, lr=0.1)
    assert {p.dtype for p in step.trainable} == {torch.float32}
    batches = [collate(_samples(), pad_token_id=0)]
    losses = [float(step(batches)[0].total) for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_steps_count_optimizer_steps() -> None:
    text = (
        "kind: train\nname: a\nbase_model: {builtin: tiny-llama}\ndata: {sources: [{synthetic: {}}]}\n"
        "train: {epochs: 2, grad_accum_steps: 4}\n"
    )
    spec = parse_spec(text)
    assert total_steps(spec, 10) == 5  # 20 micro-batches, 4 per step
    assert total_steps(parse_spec(text.replace("epochs: 2", "epochs: 2, max_steps: 3")), 10) == 3
