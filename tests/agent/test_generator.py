from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.agent import HFRoleGenerator, MoRRoleGenerator, RoleGenerator, build_agent
from mor.data import DEFAULT_ROLES, Renderer, SyntheticDataset, Trajectory, collate
from mor.model import MoRConfig, apply_mor


def _tiny_llama(vocab: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            tie_word_embeddings=True,
            max_position_embeddings=512,
        )
    )
    with torch.no_grad():
        torch.nn.init.normal_(model.get_input_embeddings().weight, std=0.2)
    return model


def _single(dataset: SyntheticDataset) -> Trajectory:
    """The shortest single-call test episode (short sequences keep the memorizing tests quick)."""
    singles = [t for t in dataset.test if t.metadata.category == "single"]
    return min(singles, key=lambda t: len(t.model_dump_json()))


def _memorize(model, trajectory: Trajectory, tokenizer, *, lr: float, max_steps: int) -> float:
    """Train `model` (whatever requires grad) on one trajectory until its labels are reproduced."""
    batch = collate(
        [Renderer(tokenizer, DEFAULT_ROLES).encode(trajectory).to_dict()], pad_token_id=tokenizer.pad_token_id
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    loss = float("inf")
    for _ in range(max_steps):
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = float(out.loss.detach())
        if loss < 0.02:
            break
    return loss


def test_plain_model_never_raises_and_respects_budgets(dataset: SyntheticDataset, tokenizer) -> None:
    model = _tiny_llama(len(tokenizer))
    generator = HFRoleGenerator(model, pad_token_id=tokenizer.pad_token_id)
    assert isinstance(generator, RoleGenerator)
    new = generator.generate([1, 2, 3], [0, 0, 0], "reasoner", max_new_tokens=5, stop_ids=[4, 5])
    assert 1 <= len(new) <= 5
    gold = _single(dataset)
    run = build_agent(model, tokenizer).run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.answer is None and run.failed_role in DEFAULT_ROLES  # untrained: a recorded failure, no exception
    with pytest.raises(ValueError, match="one role id per token"):
        generator.generate([1, 2], [0], "reasoner", max_new_tokens=2, stop_ids=[3])


@pytest.mark.slow
def test_a_memorizing_hf_model_reproduces_the_episode(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _single(dataset)
    model = _tiny_llama(len(tokenizer))
    assert _memorize(model, gold, tokenizer, lr=3e-3, max_steps=300) < 0.05
    run = build_agent(model, tokenizer).run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.ok, run.failures
    assert [c.key() for c in run.calls] == [c.key() for c in gold.calls] and run.answer == gold.answer


@pytest.mark.slow
def test_mor_adapters_reproduce_the_episode_with_role_routing(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _single(dataset)
    roles = {name: {"routed": 2, "top_k": 1, "shared": True} for name in DEFAULT_ROLES}
    mor_model = apply_mor(_tiny_llama(len(tokenizer)), MoRConfig(rank=16, alpha=32, roles=roles))
    assert _memorize(mor_model, gold, tokenizer, lr=2e-3, max_steps=800) < 0.05
    agent = build_agent(mor_model, tokenizer)
    assert isinstance(agent.generator, MoRRoleGenerator)
    run = agent.run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.ok, run.failures
    assert [c.key() for c in run.calls] == [c.key() for c in gold.calls] and run.answer == gold.answer

    renderer = Renderer(tokenizer, DEFAULT_ROLES)
    prompt = renderer.prompt(gold.model_copy(update={"turns": gold.turns[:2]}), "executor")
    new = agent.generator.generate(
        prompt.input_ids, prompt.role_ids, "executor", max_new_tokens=60, stop_ids=renderer.end_ids
    )
    direct = mor_model.generate(
        torch.tensor([prompt.input_ids]),
        role_ids=torch.tensor([prompt.role_ids]),
        role="executor",
        max_new_tokens=60,
        do_sample=False,
        eos_token_id=renderer.end_ids[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    assert new == direct[0, len(prompt.input_ids) :].tolist()
    as_reasoner = agent.generator.generate(
        prompt.input_ids, prompt.role_ids, "reasoner", max_new_tokens=60, stop_ids=renderer.end_ids
    )
    assert as_reasoner != new  # the role picks the adapters: the reasoner's LoRAs did not learn to call
    with pytest.raises(ValueError, match="the MoR model was built with"):
        build_agent(mor_model, tokenizer, roles=["a", "b", "c"])


def test_batched_generation_matches_one_by_one(dataset: SyntheticDataset, tokenizer) -> None:
    roles = {name: {"routed": 2, "top_k": 1, "shared": True} for name in DEFAULT_ROLES}
    torch.manual_seed(1)
    mor_model = apply_mor(_tiny_llama(len(tokenizer)), MoRConfig(rank=4, alpha=8, roles=roles))
    with torch.no_grad():  # non-zero adapters, so that the role of a row changes its output
        for parameter in mor_model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0.0, 0.2)
    renderer = Renderer(tokenizer, DEFAULT_ROLES)
    prompts = []
    for trajectory, role, upto in zip(
        dataset.test[:3], ["reasoner", "executor", "summarizer"], [1, 2, -1], strict=False
    ):
        prompt = renderer.prompt(trajectory.model_copy(update={"turns": trajectory.turns[:upto]}), role)
        prompts.append((prompt.input_ids, prompt.role_ids, role))
    assert len({len(ids) for ids, _, _ in prompts}) == 3  # different lengths: the batch is padded
    for generator in (
        MoRRoleGenerator(mor_model, pad_token_id=tokenizer.pad_token_id),
        HFRoleGenerator(_tiny_llama(len(tokenizer)), pad_token_id=tokenizer.pad_token_id),
    ):
        batched = generator.generate_batch(prompts, max_new_tokens=[12, 8, 10], stop_ids=renderer.end_ids)
        single = [
            generator.generate(ids, r, role, max_new_tokens=budget, stop_ids=renderer.end_ids)
            for (ids, r, role), budget in zip(prompts, [12, 8, 10], strict=False)
        ]
        assert batched == single
        assert [len(row) for row in batched] == [12, 8, 10] or any(renderer.end_ids[0] in row for row in batched)


def test_cut_at_stop() -> None:
    from mor.agent.generator import cut_at_stop

    assert cut_at_stop([5, 6, 7, 8, 9], [7, 8], 10) == [5, 6, 7, 8]
    assert cut_at_stop([5, 6, 7, 8, 9], [7, 8], 3) == [5, 6, 7]
    assert cut_at_stop([5, 6], [], 1) == [5]
