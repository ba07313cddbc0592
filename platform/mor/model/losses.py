"""The MoR auxiliary losses: Switch-style load balancing per role router, orthogonality within a role."""

from __future__ import annotations

import torch

__all__ = ["load_balancing_loss", "orthogonality_loss", "orthogonality_loss_batched"]


def load_balancing_loss(
    probs: torch.Tensor, top_index: torch.Tensor, num_experts: int, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Switch-Transformer balance loss `E * sum_i f_i * P_i` for one router over a set of tokens.

    `f_i` is the fraction of the tokens' top-k assignments that went to expert `i` (it sums to 1 over experts) and
    `P_i` the mean router probability of expert `i`. Uniform routing gives exactly 1, the minimum when `f` follows
    `P`; gradients flow through `P` only. `counts` (assignments per expert) may be passed when already computed.
    """
    if probs.shape[0] == 0:
        return probs.new_zeros(())
    if counts is None:
        counts = torch.bincount(top_index.reshape(-1), minlength=num_experts)
    fraction = counts.to(probs.dtype) / top_index.numel()
    mean_prob = probs.mean(dim=0)
    return num_experts * torch.dot(fraction, mean_prob)


def orthogonality_loss(down: torch.Tensor, up: torch.Tensor, rank: int) -> torch.Tensor:
    """Sum over LoRA pairs i < j of one role of `||A_i A_j^T||_F^2 + ||B_i^T B_j||_F^2`.

    `down` stacks the role's A factors as rows `(num_loras * rank, in)` and `up` its B factors as columns
    `(out, num_loras * rank)` (torch layouts; the paper writes A transposed). Orthogonal factors give exactly 0.
    Computed from the two Gram matrices, so the cost is `O((num_loras * rank)^2 * (in + out))`.
    """
    return orthogonality_loss_batched(down.unsqueeze(0), up.unsqueeze(0), rank)


def _off_diagonal_blocks_sq(gram: torch.Tensor, num_loras: int, rank: int) -> torch.Tensor:
    """Half the squared Frobenius norm of the off-diagonal `rank x rank` blocks of symmetric Grams `(G, L*r, L*r)`."""
    lora_of_row = torch.arange(num_loras * rank, device=gram.device) // rank
    off_diagonal = (lora_of_row.unsqueeze(0) != lora_of_row.unsqueeze(1)).to(gram.dtype)
    return (gram * off_diagonal).square().sum() / 2


def orthogonality_loss_batched(downs: torch.Tensor, ups: torch.Tensor, rank: int) -> torch.Tensor:
    """`orthogonality_loss` summed over a stack of same-shaped groups: `downs (G, L*r, in)`, `ups (G, out, L*r)`.

    One batched matmul per Gram instead of many small ones (the loss is a sum over groups either way).
    """
    num_loras = downs.shape[1] // rank
    if num_loras < 2 or downs.shape[0] == 0:
        return downs.new_zeros((), dtype=torch.float32)
    downs, ups = downs.float(), ups.float()
    gram_a = torch.bmm(downs, downs.transpose(1, 2))
    gram_b = torch.bmm(ups.transpose(1, 2), ups)
    return _off_diagonal_blocks_sq(gram_a, num_loras, rank) + _off_diagonal_blocks_sq(gram_b, num_loras, rank)
