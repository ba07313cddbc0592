"""Role generators: given prompt token ids, per-token role ids and the role to generate, return new token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

__all__ = ["RoleGenerator", "HFRoleGenerator", "MoRRoleGenerator"]


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
    """Greedy decoding with a plain Hugging Face causal LM; role ids are ignored (the model has no role adapters)."""

    def __init__(self, model: Any, *, pad_token_id: int | None = None) -> None:
        self.model = model
        self.pad_token_id = pad_token_id

    def _device(self) -> torch.device:
        for parameter in self.model.parameters():
            return parameter.device
        return torch.device("cpu")

    def _role_kwargs(self, role_ids: torch.Tensor, role: str) -> dict[str, Any]:
        return {}

    @torch.no_grad()
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
        if len(input_ids) != len(role_ids):
            raise ValueError(
                f"role_ids: got {len(role_ids)} for {len(input_ids)} input_ids; give one role id per token"
            )
        device = self._device()
        ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
        roles = torch.tensor([list(role_ids)], dtype=torch.long, device=device)
        stop = list(stop_ids)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "num_beams": 1,
            "attention_mask": torch.ones_like(ids),
        }
        if len(stop) == 1:
            kwargs["eos_token_id"] = stop[0]
        elif stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnSuffix(stop)])
        pad = self.pad_token_id if self.pad_token_id is not None else (stop[0] if stop else None)
        if pad is not None:
            kwargs["pad_token_id"] = pad
        was_training = self.model.training
        self.model.eval()
        try:
            output = self.model.generate(input_ids=ids, **self._role_kwargs(roles, role), **kwargs)
        finally:
            self.model.train(was_training)
        return output[0, ids.shape[1] :].tolist()


class MoRRoleGenerator(HFRoleGenerator):
    """Greedy decoding with a `mor.model.MoRModel`: prompt tokens use their role ids, new tokens the role's LoRAs."""

    def _role_kwargs(self, role_ids: torch.Tensor, role: str) -> dict[str, Any]:
        return {"role_ids": role_ids, "role": role}
