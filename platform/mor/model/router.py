"""Token-aware routing inside one role: softmax over the routed experts, top-k, renormalised weights."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Routing", "route_top_k", "shared_gate"]


class Routing(NamedTuple):
    """The routing of a set of tokens over one role's routed experts.

    `weights` is dense `(tokens, experts)`: the renormalised top-k weight of each selected expert, 0 elsewhere.
    `probs` are the full softmax probabilities (for the load-balancing loss); `top_index` the selected experts.
    """

    weights: torch.Tensor
    probs: torch.Tensor
    top_index: torch.Tensor


def route_top_k(logits: torch.Tensor, top_k: int) -> Routing:
    """Softmax the router logits `(tokens, experts)` in float32, keep the `top_k` largest and renormalise them."""
    probs = torch.softmax(logits.float(), dim=-1)
    num_experts = probs.shape[-1]
    if top_k >= num_experts:
        top_index = torch.arange(num_experts, device=probs.device).expand(probs.shape[0], num_experts)
        return Routing(weights=probs, probs=probs, top_index=top_index)
    top_values, top_index = probs.topk(top_k, dim=-1)
    top_weights = top_values / top_values.sum(dim=-1, keepdim=True)
    weights = torch.zeros_like(probs).scatter(-1, top_index, top_weights)
    return Routing(weights=weights, probs=probs, top_index=top_index)


def shared_gate(gate_logit: torch.Tensor) -> torch.Tensor:
    """The shared LoRA's per-token weight: a sigmoid of its gate logit, in float32."""
    return torch.sigmoid(gate_logit.float())
