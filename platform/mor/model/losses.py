"""The MoR auxiliary losses: Switch-style load balancing per role router, orthogonality within a role."""

from __future__ import annotations

import torch

__all__ = ["load_balancing_loss", "orthogonality_loss"]


def load_balancing_loss(probs: torch.Tensor, top_index: torch.Tensor, num_experts: int) -> torch.Tensor:
    """Switch-Transformer balance loss `E * sum_i f_i * P_i` for one router over a set of tokens.

    `f_i` is the fraction of the tokens' top-k assignments that went to expert `i` (it sums to 1 over experts) and
    `P_i` the mean router probability of expert `i`. Uniform routing gives exactly 1, the minimum when `f` follows
    `P`; gradients flow through `P` only.
    """
    if probs.shape[0] == 0:
        return probs.new_zeros(())
    counts = torch.bincount(top_index.reshape(-1), minlength=num_experts).to(probs.dtype)
    fraction = counts / top_index.numel()
    mean_prob = probs.mean(dim=0)
    return num_experts * torch.dot(fraction, mean_prob)


def orthogonality_loss(down: torch.Tensor, up: torch.Tensor, rank: int) -> torch.Tensor:
    """Sum over LoRA pairs i < j of one role of `||A_i A_j^T||_F^2 + ||B_i^T B_j||_F^2`.

    `down` stacks the role's A factors as rows `(num_loras * rank, in)` and `up` its B factors as columns
    `(out, num_loras * rank)` (torch layouts; the paper writes A transposed). Orthogonal factors give exactly 0.
    Computed from the two Gram matrices, so the cost is `O((num_loras * rank)^2 * (in + out))`.
    """
    num_loras = down.shape[0] // rank
    if num_loras < 2:
        return down.new_zeros((), dtype=torch.float32)
    total = down.new_zeros((), dtype=torch.float32)
    for gram in (down.float() @ down.float().T, up.float().T @ up.float()):
        blocks = gram.reshape(num_loras, rank, num_loras, rank)
        diagonal = torch.diagonal(blocks, dim1=0, dim2=2)  # (rank, rank, num_loras): the i == j blocks
        total = total + (gram.square().sum() - diagonal.square().sum()) / 2
    return total
