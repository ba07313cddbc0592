from __future__ import annotations

import pytest
import torch

from mor.data import IGNORE_INDEX, RoleCollator, collate


def test_right_padding() -> None:
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "role_ids": [0, 1, 1], "labels": [-100, 6, 7]},
            {"input_ids": [8], "role_ids": [2], "labels": [8]},
        ],
        pad_token_id=0,
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["role_ids"].tolist() == [[0, 1, 1], [2, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_left_padding_and_multiple_of() -> None:
    collator = RoleCollator(pad_token_id=9, pad_role_id=1, pad_to_multiple_of=4)
    batch = collator([{"input_ids": [5, 6], "role_ids": [0, 0], "labels": [5, 6]}])
    assert batch["input_ids"].tolist() == [[5, 6, 9, 9]] and batch["role_ids"].tolist() == [[0, 0, 1, 1]]
    left = collate(
        [
            {"input_ids": [5, 6], "role_ids": [2, 2], "labels": [5, 6]},
            {"input_ids": [7], "role_ids": [2], "labels": [7]},
        ],
        pad_token_id=0,
        padding_side="left",
    )
    assert left["input_ids"].tolist() == [[5, 6], [0, 7]] and left["attention_mask"].tolist() == [[1, 1], [0, 1]]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="equally long"):
        collate([{"input_ids": [1, 2], "role_ids": [0], "labels": [1, 2]}], pad_token_id=0)
    with pytest.raises(ValueError, match="empty batch"):
        collate([], pad_token_id=0)
