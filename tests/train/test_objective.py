from __future__ import annotations

import torch
import torch.nn.functional as F

from mor.train.objective import role_cross_entropy


def test_matches_plain_cross_entropy_and_splits_by_role() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, 3, 4, -100, 5, 6], [-100, -100, 1, 2, -100, -100]])
    roles = torch.tensor([[0, 0, 0, 1, 1, 1], [2, 2, 2, 2, 2, 2]])
    ce, per_role, count = role_cross_entropy(logits, labels, roles, ["reasoner", "executor", "summarizer"])
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(ce, expected)
    assert count == 6
    # reasoner labels: positions 1,2 of row 0 → predicted from positions 0,1
    reasoner = F.cross_entropy(logits[0, 0:2], labels[0, 1:3])
    executor = F.cross_entropy(logits[0, 3:5], labels[0, 4:6])
    summarizer = F.cross_entropy(logits[1, 1:3], labels[1, 2:4])
    assert abs(per_role["reasoner"] - float(reasoner)) < 1e-5
    assert abs(per_role["executor"] - float(executor)) < 1e-5
    assert abs(per_role["summarizer"] - float(summarizer)) < 1e-5


def test_role_without_labels_is_left_out() -> None:
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[-100, 1, 2]])
    roles = torch.tensor([[0, 0, 0]])
    ce, per_role, count = role_cross_entropy(logits, labels, roles, ["a", "b"])
    assert set(per_role) == {"a"}
    assert abs(float(ce) - float(torch.log(torch.tensor(4.0)))) < 1e-6
    assert count == 2
