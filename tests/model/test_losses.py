"""Load-balancing loss (minimal, = 1, for uniform routing) and orthogonality loss (0 for orthogonal factors)."""

from __future__ import annotations

import itertools

import torch

from mor.model import load_balancing_loss, orthogonality_loss, route_top_k


def test_balance_loss_is_one_for_uniform_routing_and_larger_when_skewed() -> None:
    uniform = route_top_k(torch.zeros(12, 4), top_k=2)
    assert abs(load_balancing_loss(uniform.probs, uniform.top_index, 4).item() - 1.0) < 1e-6
    skew = torch.tensor([3.0, 1.0, 0.0, 0.0])
    skewed = route_top_k(skew.expand(12, 4) + 0.01 * torch.randn(12, 4), top_k=2)
    assert load_balancing_loss(skewed.probs, skewed.top_index, 4).item() > 1.5


def test_balance_loss_never_drops_below_uniform_for_a_single_token() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        routing = route_top_k(torch.randn(1, 5, generator=generator) * 3, top_k=2)
        assert load_balancing_loss(routing.probs, routing.top_index, 5).item() >= 1.0 - 1e-6


def test_balance_loss_matches_the_switch_formula_and_flows_through_probabilities() -> None:
    logits = torch.randn(10, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    routing = route_top_k(logits, top_k=3)
    loss = load_balancing_loss(routing.probs, routing.top_index, 4)
    fraction = torch.stack([(routing.top_index == i).sum() for i in range(4)]).float() / 30
    assert torch.allclose(loss, 4 * (fraction * routing.probs.mean(0)).sum())
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    empty = load_balancing_loss(torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.long), 4)
    assert empty.item() == 0.0


def _pairwise(factors_a: list[torch.Tensor], factors_b: list[torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(())
    for i, j in itertools.combinations(range(len(factors_a)), 2):
        total = total + (factors_a[i] @ factors_a[j].T).square().sum() + (factors_b[i].T @ factors_b[j]).square().sum()
    return total


def test_orthogonality_loss_is_zero_for_orthogonal_factors() -> None:
    rank, loras, width = 2, 3, 8
    basis_in = torch.linalg.qr(torch.randn(width, width, generator=torch.Generator().manual_seed(0)))[0]
    basis_out = torch.linalg.qr(torch.randn(width, width, generator=torch.Generator().manual_seed(1)))[0]
    down = basis_in[:, : loras * rank].T * 3.0  # rows orthogonal across LoRAs
    up = basis_out[:, : loras * rank] * 0.5  # columns orthogonal across LoRAs
    assert orthogonality_loss(down, up, rank).abs().item() < 1e-10


def test_orthogonality_loss_matches_the_pairwise_definition() -> None:
    rank, loras = 4, 5
    generator = torch.Generator().manual_seed(2)
    down = torch.randn(loras * rank, 16, generator=generator)
    up = torch.randn(12, loras * rank, generator=generator)
    expected = _pairwise(
        [down[i * rank : (i + 1) * rank] for i in range(loras)],
        [up[:, i * rank : (i + 1) * rank] for i in range(loras)],
    )
    got = orthogonality_loss(down, up, rank)
    assert torch.allclose(got, expected, rtol=1e-4)
    assert orthogonality_loss(down[:rank], up[:, :rank], rank).item() == 0.0  # one LoRA: no pairs
