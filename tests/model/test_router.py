"""Top-k routing: softmax in float32, top-k, renormalised weights, dense layout."""

from __future__ import annotations

import torch

from mor.model import route_top_k
from mor.model.router import shared_gate


def test_top_k_weights_are_renormalised_softmax_over_the_selected_experts() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 5.0]])
    routing = route_top_k(logits, top_k=2)
    probs = torch.softmax(logits, dim=-1)
    assert torch.allclose(routing.probs, probs)
    first = probs[0, [0, 2]] / probs[0, [0, 2]].sum()
    assert torch.allclose(routing.weights[0], torch.tensor([first[0], 0.0, first[1], 0.0]))
    assert routing.weights[1, 3] > 0.9 and torch.count_nonzero(routing.weights[1]) == 2
    assert torch.allclose(routing.weights.sum(-1), torch.ones(2))
    assert sorted(routing.top_index[0].tolist()) == [0, 2]


def test_top_k_equal_to_experts_keeps_the_softmax() -> None:
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    routing = route_top_k(logits, top_k=3)
    assert torch.allclose(routing.weights, torch.softmax(logits, -1))
    assert routing.top_index.shape == (5, 3)


def test_low_precision_logits_route_in_float32() -> None:
    routing = route_top_k(torch.randn(4, 4).bfloat16(), top_k=1)
    assert routing.weights.dtype == torch.float32
    assert torch.equal(routing.weights.sum(-1), torch.ones(4))
    assert torch.allclose(shared_gate(torch.zeros(2, 1)), torch.full((2, 1), 0.5))
