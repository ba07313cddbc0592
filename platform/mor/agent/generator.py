"""Role generators: given prompt token ids, per-token role ids and the role to generate, return new token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

__all__ = ["Prompt", "RoleGenerator", "BatchRoleGenerator", "HFRoleGenerator", "MoRRoleGenerator", "cut_at_stop"]

Prompt = tuple[Sequence[int], Sequence[int], str]
"""(input_ids, role_ids, role to generate) of one generation request."""


@runtime_checkable
class RoleGenerator(Protocol):
    """Anything that continues a role-tagged prompt as one role (greedy, stopping after `stop_ids`)."""

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        """New token ids (ending with `stop_ids` when the role finished before `max_new_tokens`)."""
        ...


@runtime_checkable
class BatchRoleGenerator(Protocol):
    """A role generator that also continues many prompts (of any roles) in one call."""

    def generate_batch(
        self, prompts: Sequence[Prompt], *, max_new_tokens: Sequence[int], stop_ids: Sequence[int]
    ) -> list[list[int]]:
        """New token ids per prompt, each cut after its first `stop_ids` and to its own budget."""
        ...


def cut_at_stop(tokens: Sequence[int], stop_ids: Sequence[int], budget: int) -> list[int]:
    """`tokens` up to and including the first occurrence of `stop_ids`, at most `budget` tokens."""
    stop = list(stop_ids)
    width = len(stop)
    out = list(tokens[:budget])
    if width:
        for end in range(width, len(out) + 1):
            if out[end - width : end] == stop:
                return out[:end]
    return out


class _StopOnSuffix(StoppingCriteria):
    def __init__(self, stop_ids: Sequence[int]) -> None:
        self.stop = torch.tensor(list(stop_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        width = self.stop.numel()
        if input_ids.shape[1] < width:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        tail = input_ids[:, -width:]
        return (tail == self.stop.to(input_ids.device)).all(dim=1)


class HFRoleGenerator:
    """Greedy decoding with a plain Hugging Face causal LM; role ids are ignored (the model has no role adapters).

    Batches are left-padded; rows stop independently at the stop sequence.
    """

    def __init__(self, model: Any, *, pad_token_id: int | None = None) -> None:
        self.model = model
        self.pad_token_id = pad_token_id

    def _device(self) -> torch.device:
        for parameter in self.model.parameters():
            return parameter.device
        return torch.device("cpu")

    def _role_kwargs(self, role_ids: torch.Tensor, roles: list[str]) -> dict[str, Any]:
        return {}

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        """Greedy continuation of the prompt as `role`."""
        return self.generate_batch([(input_ids, role_ids, role)], max_new_tokens=[max_new_tokens], stop_ids=stop_ids)[0]

    @torch.no_grad()
    def generate_batch(
        self, prompts: Sequence[Prompt], *, max_new_tokens: Sequence[int], stop_ids: Sequence[int]
    ) -> list[list[int]]:
        """Greedy continuations of several prompts at once."""
        if not prompts:
            return []
        if len(max_new_tokens) != len(prompts):
            raise ValueError(f"max_new_tokens: got {len(max_new_tokens)} budgets for {len(prompts)} prompts")
        for index, (ids, roles, _) in enumerate(prompts):
            if len(ids) != len(roles):
                raise ValueError(
                    f"prompt {index}: role_ids has {len(roles)} entries for {len(ids)} input_ids; give one role id "
                    "per token"
                )
        stop = list(stop_ids)
        pad = self.pad_token_id if self.pad_token_id is not None else (stop[0] if stop else 0)
        width = max(len(ids) for ids, _, _ in prompts)
        device = self._device()
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        role_ids = torch.zeros((len(prompts), width), dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, (ids, roles, _) in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
            role_ids[row, width - len(ids) :] = torch.tensor(list(roles), dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(max_new_tokens),
            "do_sample": False,
            "num_beams": 1,
            "attention_mask": attention.to(device),
            "pad_token_id": pad,
        }
        if len(stop) == 1:
            kwargs["eos_token_id"] = stop[0]
        elif stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnSuffix(stop)])
        was_training = self.model.training
        self.model.eval()
        try:
            output = self.model.generate(
                input_ids=input_ids.to(device),
                **self._role_kwargs(role_ids.to(device), [role for _, _, role in prompts]),
                **kwargs,
            )
        finally:
            self.model.train(was_training)
        new = output[:, width:].tolist()
        return [cut_at_stop(row, stop, budget) for row, budget in zip(new, max_new_tokens, strict=True)]


class MoRRoleGenerator(HFRoleGenerator):
    """Greedy decoding with a `mor.model.MoRModel`: prompt tokens use their role ids, new tokens their row's role."""

    def _role_kwargs(self, role_ids: torch.Tensor, roles: list[str]) -> dict[str, Any]:
        return {"role_ids": role_ids, "role": roles if len(roles) > 1 else roles[0]}
