"""apply_mor on Llama, Qwen2, Mistral and Phi-3: injection, freezing, routing, generate, checkpointing, threads."""

from __future__ import annotations

import inspect
import threading

import pytest
import torch
from torch import nn

from mor.model import MoRConfig, MoRConfigError, MoRLinear, MoRModel, apply_mor
from mor.model.cache import cache_argument_name
from mor.model.model import _GenerationSchedule

from .conftest import VOCAB, build_base, perturb_adapters

EXPECTED_TARGETS = {
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "qwen2": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "mistral": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
}


def _batch(seed: int = 0, batch: int = 2, length: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (batch, length), generator=generator)
    role_ids = torch.randint(0, 3, (batch, length), generator=generator)
    return input_ids, role_ids


def test_apply_mor_wraps_targets_and_freezes_base(architecture: str) -> None:
    base = build_base(architecture)
    base_names = {name for name, _ in base.named_parameters()}
    mor_model = apply_mor(base, MoRConfig())
    layers = dict(mor_model.mor_layers())
    assert {name.rsplit(".", 1)[-1] for name in layers} == EXPECTED_TARGETS[architecture]
    assert len(layers) == 2 * len(EXPECTED_TARGETS[architecture])
    trainable = {name for name, p in mor_model.named_parameters() if p.requires_grad}
    assert trainable and all(".mor_roles." in name for name in trainable)
    frozen = {name for name, p in mor_model.named_parameters() if not p.requires_grad}
    assert len(frozen) == len(base_names)
    assert mor_model.base_model is base and isinstance(mor_model.config, MoRConfig)


def test_fresh_adapter_reproduces_base_model(architecture: str) -> None:
    input_ids, role_ids = _batch()
    with torch.no_grad():
        expected = build_base(architecture)(input_ids=input_ids).logits
        got = apply_mor(build_base(architecture))(input_ids=input_ids, role_ids=role_ids).logits
    assert torch.equal(got, expected)


@pytest.mark.parametrize("impl", ["fused", "grouped"])
def test_fast_model_matches_dense_math_and_trains(architecture: str, impl: str) -> None:
    input_ids, role_ids = _batch(seed=1)
    mor_model = apply_mor(build_base(architecture))
    perturb_adapters(mor_model)
    results = {}
    for name in (impl, "dense"):
        mor_model.set_impl(name)
        mor_model.zero_grad()
        out = mor_model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
        loss = out.loss + 0.01 * mor_model.aux_loss() + 0.001 * mor_model.orth_loss()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in mor_model.named_parameters() if p.requires_grad}
        stats = mor_model.router_stats()
        results[name] = (
            out.logits.detach(),
            mor_model.aux_loss().detach(),
            mor_model.aux_loss("mean").detach(),
            grads,
            stats,
        )
    (logits, aux, aux_mean, grads, stats), (dense_logits, dense_aux, dense_mean, dense_grads, dense_stats) = (
        results[impl],
        results["dense"],
    )
    assert (logits - dense_logits).abs().max().item() < 1e-4
    assert abs(aux.item() - dense_aux.item()) < 1e-4 and abs(aux_mean.item() - dense_mean.item()) < 1e-5
    assert stats == dense_stats
    assert max((grads[n] - dense_grads[n]).abs().max().item() for n in grads) < 1e-4
    assert all(torch.count_nonzero(g) > 0 for n, g in grads.items() if n.endswith(".up"))


def test_role_ids_route_each_token_to_its_role(architecture: str) -> None:
    """Changing the executor's weights changes nothing before the first executor token."""
    mor_model = apply_mor(build_base(architecture))
    perturb_adapters(mor_model)
    input_ids, _ = _batch(length=8)
    role_ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2], [2, 2, 2, 2, 2, 2, 2, 2]])
    with torch.no_grad():
        before = mor_model(input_ids=input_ids, role_ids=role_ids).logits
        for _, layer in mor_model.mor_layers():
            layer.mor_roles["executor"].up.add_(0.1)
        after = mor_model(input_ids=input_ids, role_ids=role_ids).logits
    assert torch.equal(before[0, :3], after[0, :3])
    assert torch.equal(before[1], after[1])
    assert (before[0, 3:] - after[0, 3:]).abs().max() > 1e-4


def test_role_argument_and_bad_role_ids_fail_clearly() -> None:
    mor_model = apply_mor(build_base())
    perturb_adapters(mor_model)
    input_ids, _ = _batch(length=5)
    with torch.no_grad():
        by_name = mor_model(input_ids=input_ids, role="summarizer").logits
        by_ids = mor_model(input_ids=input_ids, role_ids=torch.full((2, 5), 2)).logits
        per_row = mor_model(input_ids=input_ids, role=["reasoner", 2]).logits
        mixed = mor_model(input_ids=input_ids, role_ids=torch.tensor([[0] * 5, [2] * 5])).logits
    assert torch.equal(by_name, by_ids) and torch.equal(per_row, mixed)
    with pytest.raises(MoRConfigError, match=r"role_ids: got value 3, must be in 0..2"):
        mor_model(input_ids=input_ids, role_ids=torch.full((2, 5), 3))
    with pytest.raises(MoRConfigError, match=r"role_ids: got value -1"):
        mor_model(input_ids=input_ids, role_ids=torch.full((2, 5), -1))
    with pytest.raises(MoRConfigError, match=r"role_ids: got shape \[2, 4\], must match input_ids \[2, 5\]"):
        mor_model(input_ids=input_ids, role_ids=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(MoRConfigError, match="role_ids: got dtype torch.float32"):
        mor_model(input_ids=input_ids, role_ids=torch.zeros(2, 5))
    with pytest.raises(MoRConfigError, match="role_ids: got None"):
        mor_model(input_ids=input_ids)
    with pytest.raises(MoRConfigError, match=r"role: got 'critic', must be one of \['reasoner', 'executor'"):
        mor_model(input_ids=input_ids, role="critic")
    with pytest.raises(RuntimeError, match="without role ids"):
        mor_model.base_model(input_ids=input_ids)


def test_unknown_target_module_names_the_field_and_the_model_layers() -> None:
    with pytest.raises(MoRConfigError) as error:
        apply_mor(build_base(), MoRConfig(target_modules=["q_proj", "attn_out"]))
    message = str(error.value)
    assert "target_modules: 'attn_out' matches no linear layer of LlamaForCausalLM" in message
    assert "['down_proj', 'gate_proj', 'k_proj', 'lm_head', 'o_proj', 'q_proj', 'up_proj', 'v_proj']" in message


def test_phi3_fused_modules_need_all_their_logical_names() -> None:
    with pytest.raises(
        MoRConfigError, match=r"'q_proj' is fused into 'qkv_proj' in Phi3ForCausalLM.*\['k_proj', 'v_proj'\]"
    ):
        apply_mor(build_base("phi3"), MoRConfig(target_modules=["q_proj", "o_proj"]))
    direct = apply_mor(build_base("phi3"), MoRConfig(target_modules=["qkv_proj", "down_proj"]))
    assert {name.rsplit(".", 1)[-1] for name, _ in direct.mor_layers()} == {"qkv_proj", "down_proj"}


def test_apply_twice_is_refused() -> None:
    mor_model = apply_mor(build_base())
    with pytest.raises(MoRConfigError, match="already has MoR layers"):
        apply_mor(mor_model.base_model)


def test_two_role_spec_works_end_to_end() -> None:
    config = MoRConfig.model_validate(
        {"rank": 4, "alpha": 8, "roles": {"planner": {"routed": 2, "top_k": 1}, "actor": {"routed": 0, "top_k": 0}}}
    )
    mor_model = apply_mor(build_base("qwen2"), config)
    perturb_adapters(mor_model)
    input_ids, _ = _batch()
    role_ids = torch.randint(0, 2, input_ids.shape, generator=torch.Generator().manual_seed(4))
    out = mor_model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
    out.loss.backward()
    assert set(mor_model.router_stats()) == {"planner"}
    assert abs(sum(mor_model.router_stats()["planner"]) - 1.0) < 1e-9
    assert mor_model.aux_loss().item() > 0


def test_aux_loss_orth_loss_and_router_stats_after_forward() -> None:
    mor_model = apply_mor(build_base())
    input_ids, role_ids = _batch()
    role_ids[:, :] = 0
    role_ids[1, 5:] = 2
    with torch.no_grad():
        for _, layer in mor_model.mor_layers():
            for weights in layer.role_weights:
                weights.router_weight.zero_()  # uniform routing: every record's loss is exactly 1
        mor_model(input_ids=input_ids, role_ids=role_ids)
        assert mor_model.aux_loss().item() == 0.0  # without gradients, nothing is recorded unless asked
        mor_model(input_ids=input_ids, role_ids=role_ids, record_routing=True)
    records = len(list(mor_model.mor_layers())) * 2  # roles 0 and 2 present
    assert abs(mor_model.aux_loss().item() - records) < 1e-4
    assert abs(mor_model.aux_loss("mean").item() - 1.0) < 1e-6
    stats = mor_model.router_stats()
    assert stats["executor"] == [0.0] * 4
    assert sorted(stats["reasoner"]) == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])  # ties: one fixed top-3
    assert sorted(stats["summarizer"]) == pytest.approx([0.0, 0.5, 0.5])
    assert mor_model.orth_loss().item() > 0  # random A factors are not orthogonal
    per_layer = torch.stack([layer.orth_loss() for _, layer in mor_model.mor_layers()]).sum()
    assert torch.allclose(mor_model.orth_loss(), per_layer, rtol=1e-5)


def _greedy_without_cache(
    mor_model: MoRModel, input_ids: torch.Tensor, prompt_roles: torch.Tensor, row_roles: torch.Tensor, steps: int
) -> torch.Tensor:
    ids, roles = input_ids, prompt_roles
    with torch.no_grad():
        for _ in range(steps):
            logits = mor_model(input_ids=ids, role_ids=roles).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
            roles = torch.cat([roles, row_roles.unsqueeze(1)], dim=1)
    return ids


def test_generate_with_kv_cache_matches_full_recompute(architecture: str) -> None:
    mor_model = apply_mor(build_base(architecture))
    perturb_adapters(mor_model, std=0.2)
    input_ids, prompt_roles = _batch(seed=2, length=6)
    row_roles = torch.tensor([1, 2])
    expected = _greedy_without_cache(mor_model, input_ids, prompt_roles, row_roles, steps=5)
    common = dict(max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = mor_model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        role_ids=prompt_roles,
        role=["executor", "summarizer"],
        **common,
    )
    uncached = mor_model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        role_ids=prompt_roles,
        role=[1, 2],
        use_cache=False,
        **common,
    )
    assert torch.equal(cached, expected)
    assert torch.equal(uncached, expected)


def test_generate_routes_every_cached_step_with_the_rows_role(architecture: str) -> None:
    """After the prefill, each cached step routes its one new token with the row's role, not the prompt's first.

    The step's position comes from the KV cache, which transformers 5.24 passes as `cache` (was `past_key_values`).
    """
    mor_model = apply_mor(build_base(architecture))
    input_ids, prompt_roles = _batch(seed=2, length=6)
    prompt_roles[:, 0] = 0  # the reasoner starts both prompts; the rows then generate as executor and summarizer
    routed: list[list[list[int]]] = []
    first_layer = next(layer for _, layer in mor_model.mor_layers())
    hook = first_layer.register_forward_pre_hook(
        lambda *_: routed.append(mor_model._routing.current().role_ids.view(2, -1).tolist())
    )
    try:
        mor_model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            role_ids=prompt_roles,
            role=["executor", "summarizer"],
            max_new_tokens=3,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    finally:
        hook.remove()
    assert routed == [prompt_roles.tolist(), [[1], [2]], [[1], [2]]]


def test_a_decoding_step_without_its_cache_is_refused() -> None:
    """A step that restarts at position 0 with fewer tokens than already seen means the cache went missing."""
    schedule = _GenerationSchedule(prompt_roles=torch.zeros((1, 4), dtype=torch.long), row_roles=torch.tensor([1]))
    assert schedule.step_role_ids(1, 4, 0).tolist() == [[0, 0, 0, 0]]
    assert schedule.step_role_ids(1, 1, 4).tolist() == [[1]]
    assert schedule.step_role_ids(1, 6, 0).tolist() == [[0, 0, 0, 0, 1, 1]]  # no cache: the whole sequence again
    with pytest.raises(MoRConfigError, match="KV cache was not found"):
        schedule.step_role_ids(1, 1, 0)


def test_cache_argument_name_follows_the_installed_transformers(architecture: str) -> None:
    base = build_base(architecture)
    declared = inspect.signature(type(base).forward).parameters
    expected = "cache" if "cache" in declared else "past_key_values"
    assert expected in declared
    assert cache_argument_name(base) == expected
    assert cache_argument_name(apply_mor(base)) == expected  # through the MoRModel's **kwargs forward


def test_generate_default_prompt_roles_and_a_role_per_row() -> None:
    mor_model = apply_mor(build_base())
    perturb_adapters(mor_model, std=0.2)
    input_ids, _ = _batch(seed=3, length=5)
    common = dict(max_new_tokens=3, do_sample=False, pad_token_id=0, eos_token_id=None)
    got = mor_model.generate(input_ids, role="reasoner", **common)
    expected = _greedy_without_cache(mor_model, input_ids, torch.zeros_like(input_ids), torch.tensor([0, 0]), 3)
    assert torch.equal(got, expected)
    beams = mor_model.generate(input_ids, role=["reasoner", "executor"], num_beams=2, **common)
    assert beams.shape == (2, 8)
    with pytest.raises(MoRConfigError, match="role: got 3 roles for 2 rows"):
        mor_model.generate(input_ids, role=["reasoner"] * 3, **common)
    assert mor_model._routing.current() is None  # nothing left behind after generate


@pytest.mark.parametrize("impl", ["grouped", "fused"])
def test_gradient_checkpointing_gives_the_same_gradients(impl: str) -> None:
    input_ids, role_ids = _batch(seed=5)
    grads = []
    for checkpointing in (False, True):
        mor_model = apply_mor(build_base())
        perturb_adapters(mor_model)
        mor_model.set_impl(impl)
        mor_model.train()
        if checkpointing:
            mor_model.gradient_checkpointing_enable()
        out = mor_model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
        (out.loss + 0.01 * mor_model.aux_loss()).backward()
        grads.append({n: p.grad for n, p in mor_model.named_parameters() if p.requires_grad})
    assert max((grads[0][n] - grads[1][n]).abs().max().item() for n in grads[0]) < 1e-5


def test_concurrent_threads_each_see_their_own_role_ids() -> None:
    mor_model = apply_mor(build_base())
    perturb_adapters(mor_model, std=0.2)
    input_ids, _ = _batch(length=12)
    layouts = [torch.full((2, 12), role) for role in range(3)] + [_batch(seed=s, length=12)[1] for s in (7, 8, 9)]
    with torch.no_grad():
        expected = [mor_model(input_ids=input_ids, role_ids=ids).logits for ids in layouts]
    failures: list[str] = []

    def worker(index: int) -> None:
        with torch.no_grad():
            for _ in range(15):
                got = mor_model(input_ids=input_ids, role_ids=layouts[index]).logits
                if not torch.equal(got, expected[index]):
                    failures.append(f"layout {index}")
                    return

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(layouts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_trainable_roles_can_be_restricted() -> None:
    mor_model = apply_mor(build_base())
    mor_model.set_trainable_roles(["executor"])
    trainable = {n.split(".mor_roles.")[1].split(".")[0] for n, p in mor_model.named_parameters() if p.requires_grad}
    assert trainable == {"executor"}
    mor_model.set_trainable_roles()
    assert sum(p.requires_grad for p in mor_model.parameters()) == 2 * 3 * len(list(mor_model.mor_layers()))


def test_copied_or_pickled_model_gets_its_own_routing_state() -> None:
    import copy

    mor_model = apply_mor(build_base())
    clone = copy.deepcopy(mor_model)
    layer = next(layer for _, layer in clone.mor_layers())
    assert isinstance(layer, MoRLinear) and layer._routing is clone._routing is not mor_model._routing
    input_ids, role_ids = _batch()
    with torch.no_grad():
        assert torch.equal(
            clone(input_ids=input_ids, role_ids=role_ids).logits,
            mor_model(input_ids=input_ids, role_ids=role_ids).logits,
        )
    assert isinstance(clone.base_model, nn.Module)
    import pickle

    restored = pickle.loads(pickle.dumps(mor_model))
    with torch.no_grad():
        assert torch.equal(
            restored(input_ids=input_ids, role_ids=role_ids).logits,
            mor_model(input_ids=input_ids, role_ids=role_ids).logits,
        )


# --- DistributedDataParallel: two gloo processes on CPU -------------------------------------------------------------


def _ddp_model(impl: str = "auto") -> MoRModel:
    mor_model = apply_mor(build_base(), MoRConfig(rank=4))
    perturb_adapters(mor_model)
    mor_model.set_impl(impl)  # type: ignore[arg-type]
    return mor_model


def _ddp_batches() -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per step, per rank: (input_ids, role_ids); each rank's batch lacks some roles."""
    input_ids, mixed = _batch(seed=11, length=8)
    only_reasoner, only_summarizer = torch.zeros_like(mixed), torch.full_like(mixed, 2)
    executor_and_summarizer = 1 + (mixed > 0).long()
    reasoner_and_executor = (mixed > 0).long()
    return [
        [(input_ids, only_reasoner), (input_ids.flip(1), executor_and_summarizer)],
        [(input_ids, only_summarizer), (input_ids.flip(0), reasoner_and_executor)],
    ]


def _ddp_loss(model: nn.Module, mor_model: MoRModel, input_ids: torch.Tensor, role_ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
    return out.loss + 0.01 * mor_model.aux_loss()  # no orth loss: it alone would touch every A and B


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str, impl: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    ddp: DistributedDataParallel | None = None
    try:
        mor_model = _ddp_model(impl)
        ddp = DistributedDataParallel(mor_model)  # find_unused_parameters=False (the default)
        for step, batches in enumerate(_ddp_batches()):
            ddp.zero_grad()
            loss = _ddp_loss(ddp, ddp.module, *batches[rank])
            loss.backward()
            grads = {n: p.grad.clone() for n, p in mor_model.named_parameters() if p.requires_grad}
            torch.save(grads, f"{out_dir}/step{step}-rank{rank}.pt")
    finally:
        # The reducer goes first, while the process group is still registered: a group destroyed by the reducer's
        # deallocation joins gloo's worker thread holding the GIL that thread may need (the worker then hangs).
        del ddp
        dist.destroy_process_group()


@pytest.mark.parametrize("impl", ["grouped", "fused"])
def test_ddp_two_processes_with_missing_roles_and_no_unused_parameter_search(tmp_path, impl: str) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), impl), nprocs=2, join=True)
    reference = _ddp_model(impl)
    for step, batches in enumerate(_ddp_batches()):
        per_rank = []
        for input_ids, role_ids in batches:
            reference.zero_grad()
            _ddp_loss(reference, reference, input_ids, role_ids).backward()
            per_rank.append({n: p.grad.clone() for n, p in reference.named_parameters() if p.requires_grad})
        expected = {name: (per_rank[0][name] + per_rank[1][name]) / 2 for name in per_rank[0]}
        for rank in range(2):
            got = torch.load(tmp_path / f"step{step}-rank{rank}.pt")
            assert got.keys() == expected.keys()
            assert max((got[n] - expected[n]).abs().max().item() for n in expected) < 1e-5


@pytest.mark.parametrize("impl", ["grouped", "fused"])
def test_bfloat16_base_with_float32_adapters_trains(impl: str) -> None:
    mor_model = apply_mor(build_base().to(torch.bfloat16))
    perturb_adapters(mor_model)
    mor_model.set_impl(impl)
    input_ids, role_ids = _batch()
    out = mor_model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
    assert out.logits.dtype == torch.bfloat16
    (out.loss + 0.01 * mor_model.aux_loss()).backward()
    grads = [p.grad for p in mor_model.parameters() if p.requires_grad]
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    with pytest.raises(MoRConfigError, match="got both role_ids and role"):
        mor_model(input_ids=input_ids, role_ids=role_ids, role="executor")
