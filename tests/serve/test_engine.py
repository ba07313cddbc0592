"""The batching engine: the same tokens as Hugging Face `generate` run alone, in every batching mode, with rows of
different roles and prompt lengths sharing forwards; constraints, sampling, cancellation and failures per job."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch
from transformers import LlamaForCausalLM

from mor.data.render import END
from mor.model import MoRModel
from mor.serve.constrain import TextConstraint, Vocabulary
from mor.serve.engine import BatchEngine, GenerationJob, Sampling


def _jobs(count: int, seed: int = 1) -> list[tuple[list[int], list[int], int]]:
    generator = torch.Generator().manual_seed(seed)
    jobs = []
    for index in range(count):
        length = int(torch.randint(4, 40, (1,), generator=generator))
        ids = torch.randint(10, 400, (length,), generator=generator).tolist()
        roles = torch.randint(0, 3, (length,), generator=generator).tolist()
        jobs.append((ids, roles, index % 3))
    return jobs


def _reference(model: MoRModel, jobs, max_new_tokens: int) -> list[list[int]]:
    out = []
    with torch.inference_mode():
        for ids, roles, role in jobs:
            generated = model.generate(
                torch.tensor([ids]),
                role_ids=torch.tensor([roles]),
                role=role,
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
            out.append(generated[0, len(ids) :].tolist())
    return out


@pytest.mark.parametrize("mode", ["cross-role", "same-role", "off"])
def test_batched_decoding_matches_generate_alone(random_mor: MoRModel, mode: str) -> None:
    jobs = _jobs(7)
    expected = _reference(random_mor, jobs, 10)
    assert len({tuple(tokens) for tokens in expected}) == len(jobs)
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0, mode=mode) as engine:
        futures = [engine.submit(GenerationJob(ids, roles, role, 10, [])) for ids, roles, role in jobs]
        results = [future.result(timeout=120) for future in futures]
    assert [result.token_ids for result in results] == expected
    assert all(
        result.finish_reason == "length" and result.prompt_tokens == len(job[0])
        for result, job in zip(results, jobs, strict=True)
    )
    stats = engine.stats
    assert stats.generated_tokens == 70 and stats.jobs_done == 7
    if mode == "cross-role":
        assert stats.prefill_forwards == 1 and stats.mixed_role_forwards == stats.decode_forwards == 9
        assert stats.mean_rows_per_decode == 7
    elif mode == "same-role":
        assert stats.mixed_role_forwards == 0 and stats.prefill_forwards == 3 and stats.decode_forwards == 27
    else:
        assert stats.prefill_forwards == 7 and stats.decode_forwards == 63 and stats.mean_rows_per_decode == 1


def test_rows_join_and_leave_a_running_batch(random_mor: MoRModel) -> None:
    """Jobs with different budgets end at different steps; later jobs join while others run."""
    jobs = _jobs(5, seed=3)
    budgets = [3, 12, 1, 7, 9]
    expected = [tokens[:budget] for tokens, budget in zip(_reference(random_mor, jobs, 12), budgets, strict=True)]
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0, max_batch_size=3) as engine:
        futures = [
            engine.submit(GenerationJob(ids, roles, role, budget, []))
            for (ids, roles, role), budget in zip(jobs, budgets, strict=True)
        ]
        results = [future.result(timeout=120) for future in futures]
    assert [result.token_ids for result in results] == expected
    assert engine.stats.prefill_forwards >= 2


def test_stop_ids_end_a_job(random_mor: MoRModel) -> None:
    ids, roles, role = _jobs(1, seed=5)[0]
    tokens = _reference(random_mor, [(ids, roles, role)], 8)[0]
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0) as engine:
        result = engine.submit(GenerationJob(ids, roles, role, 8, tokens[2:4])).result(timeout=60)
    assert result.token_ids == tokens[:4] and result.finish_reason == "stop"


def test_constraint_masks_apply_per_row(random_mor: MoRModel, tokenizer) -> None:
    vocab = Vocabulary(tokenizer, logits_size=len(tokenizer), end_text=END)
    jobs = _jobs(3, seed=7)
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0) as engine:
        free = engine.submit(GenerationJob(*jobs[0], 12, []))
        text = engine.submit(GenerationJob(*jobs[1], 12, [], constraint=TextConstraint(vocab)))
        results = free.result(timeout=60), text.result(timeout=60)
    special = set(vocab.special_ids) - set(vocab.end_ids)
    assert not special & set(results[1].token_ids[:-1])


def test_sampling_is_reproducible_with_a_seed(random_mor: MoRModel) -> None:
    ids, roles, role = _jobs(1, seed=9)[0]
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0) as engine:
        runs = [
            engine.submit(GenerationJob(ids, roles, role, 12, [], sampling=Sampling(1.5, 0.9, seed))).result(60)
            for seed in (1, 1, 2)
        ]
    assert runs[0].token_ids == runs[1].token_ids != runs[2].token_ids


def test_cancel_and_failures_stay_with_their_job(random_mor: MoRModel) -> None:
    jobs = _jobs(2, seed=11)
    long_prompt = list(range(10, 10 + 600))  # more than the model's 512 positions
    started = threading.Event()
    with BatchEngine(random_mor, role_aware=True, pad_token_id=0, max_positions=512) as engine:
        slow = GenerationJob(*jobs[0], 400, [], on_token=lambda _: started.set())
        future = engine.submit(slow)
        too_long = engine.submit(GenerationJob(long_prompt, [0] * 600, 0, 4, []))
        fine = engine.submit(GenerationJob(*jobs[1], 5, []))
        assert started.wait(60)
        slow.cancel()
        cancelled, failed, ok = future.result(60), too_long.result(60), fine.result(60)
        assert engine.alive
    assert cancelled.finish_reason == "cancelled" and len(cancelled.token_ids) < 400
    assert failed.finish_reason == "error" and "512 positions" in (failed.error or "")
    assert ok.finish_reason == "length" and len(ok.token_ids) == 5
    with pytest.raises(ValueError, match="one role id per token"):
        engine.submit(GenerationJob([1, 2], [0], 0, 3, []))


def test_async_generate_and_task_cancellation(random_mor: MoRModel) -> None:
    ids, roles, role = _jobs(1, seed=13)[0]

    async def scenario() -> tuple[int, bool]:
        with BatchEngine(random_mor, role_aware=True, pad_token_id=0) as engine:
            result = await engine.generate(GenerationJob(ids, roles, role, 4, []))
            job = GenerationJob(ids, roles, role, 10_000, [])
            task = asyncio.ensure_future(engine.generate(job))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return len(result.token_ids), job.cancelled

    count, cancelled = asyncio.run(scenario())
    assert count == 4 and cancelled


def test_plain_models_run_without_role_ids(random_mor: MoRModel) -> None:
    ids = list(range(20, 40))
    torch.manual_seed(1)
    plain = LlamaForCausalLM(random_mor.base_model.config).eval()  # the base model's shape, no MoR layers
    with torch.inference_mode():
        expected = plain.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, 20, dtype=torch.long),
            max_new_tokens=6,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    with BatchEngine(plain, role_aware=False, pad_token_id=0) as engine:
        result = engine.submit(GenerationJob(ids, [0] * 20, 0, 6, [])).result(60)
    assert result.token_ids == expected[0, 20:].tolist()


def test_bad_settings_are_refused(random_mor: MoRModel) -> None:
    with pytest.raises(ValueError, match="mode"):
        BatchEngine(random_mor, role_aware=True, pad_token_id=0, mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchEngine(random_mor, role_aware=True, pad_token_id=0, max_batch_size=0)
