"""Padding collator: a batch of rendered samples as tensors (input_ids, attention_mask, labels, role_ids)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mor.data.render import IGNORE_INDEX

__all__ = ["RoleCollator", "collate"]


def collate(
    samples: Sequence[Mapping[str, Sequence[int]] | Any],
    *,
    pad_token_id: int,
    pad_role_id: int = 0,
    pad_to_multiple_of: int | None = None,
    padding_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Pad samples (mappings or objects with input_ids, role_ids, labels) to one length.

    Padding tokens get `pad_token_id`, role `pad_role_id`, label -100 and attention 0.
    """
    if not samples:
        raise ValueError("collate: got an empty batch; give at least one sample")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side: got {padding_side!r}, expected 'right' or 'left'")
    rows = [_fields(sample) for sample in samples]
    width = max(len(ids) for ids, _, _ in rows)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    role_ids = torch.full(shape, pad_role_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    for row, (ids, roles, labs) in enumerate(rows):
        if not len(ids) == len(roles) == len(labs):
            raise ValueError(
                f"collate: sample {row} has {len(ids)} input_ids, {len(roles)} role_ids and {len(labs)} labels; "
                "they must be equally long (render with mor.data.render)"
            )
        span = slice(0, len(ids)) if padding_side == "right" else slice(width - len(ids), width)
        input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
        role_ids[row, span] = torch.tensor(roles, dtype=torch.long)
        labels[row, span] = torch.tensor(labs, dtype=torch.long)
        attention_mask[row, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "role_ids": role_ids}


def _fields(sample: Any) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
    if isinstance(sample, Mapping):
        return sample["input_ids"], sample["role_ids"], sample["labels"]
    return sample.input_ids, sample.role_ids, sample.labels


@dataclass(frozen=True)
class RoleCollator:
    """`collate` with fixed padding settings, usable as a DataLoader `collate_fn`."""

    pad_token_id: int
    pad_role_id: int = 0
    pad_to_multiple_of: int | None = None

    def __call__(self, samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        return collate(
            samples,
            pad_token_id=self.pad_token_id,
            pad_role_id=self.pad_role_id,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
