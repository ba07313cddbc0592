"""Token-aware routing inside a role: the shared LoRA's sigmoid gate, and top-k over the routed experts.

The one place the routing math is written. Every implementation of the MoR layer (grouped, fused, dense) calls
`route_top_k` and `shared_gate`; the fused training path, which writes its own backward, takes the gradient of the
same math from `route_top_k_backward` and `shared_gate_backward`; inference takes the same weights in fewer
operators from `top_k_weights`.

Routing runs in float32 (or float64) whatever the adapter's dtype. `route_top_k` works on any leading shape
`(..., experts)`, so several roles can be routed by one call: `pad_bias` (0, or -inf for an expert a role does not
have) pads roles to the widest router, and `keep` (1 for the first `top_k` of a role, 0 beyond) gives each role its
own top-k.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "Routing",
    "at_least_float32",
    "route_top_k",
    "route_top_k_backward",
    "shared_gate",
    "shared_gate_backward",
    "top_k_weights",
]


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32 when its dtype is narrower (routing math never runs in half precision)."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


class Routing(NamedTuple):
    """The routing of a set of tokens over the routed experts of a role (or of several roles at once).

    `weights` is dense `(..., experts)`: the renormalised top-k weight of each selected expert, 0 elsewhere. `probs`
    are the full softmax probabilities (for the load-balancing loss); `top_index` the selected experts, and
    `top_weights` / `top_sum` their renormalised weights and the probability mass they were divided by.
    """

    weights: torch.Tensor
    probs: torch.Tensor
    top_index: torch.Tensor
    top_weights: torch.Tensor
    top_sum: torch.Tensor


def route_top_k(
    logits: torch.Tensor,
    top_k: int,
    *,
    pad_bias: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> Routing:
    """Softmax the router logits `(..., experts)` in float32, keep the `top_k` largest and renormalise them.

    `pad_bias` is added to the logits before the softmax; `keep` `(..., top_k)` multiplies the top-k probabilities
    before renormalising (both broadcast against the leading dimensions).
    """
    logits = at_least_float32(logits)
    if pad_bias is not None:
        logits = logits + pad_bias
    probs = torch.softmax(logits, dim=-1)
    top_probs, top_index = probs.topk(top_k, dim=-1)
    if keep is not None:
        top_probs = top_probs * keep
    top_sum = top_probs.sum(dim=-1, keepdim=True)
    top_weights = top_probs / top_sum
    weights = torch.zeros_like(probs).scatter(-1, top_index, top_weights)
    return Routing(weights=weights, probs=probs, top_index=top_index, top_weights=top_weights, top_sum=top_sum)


def top_k_weights(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """`route_top_k(logits, top_k).weights` in fewer operators, for inference (no probabilities, no gradient use).

    The softmax over the top-k logits equals the renormalised top-k of the full softmax.
    """
    logits = at_least_float32(logits)
    if top_k >= logits.shape[-1]:
        return torch.softmax(logits, dim=-1)
    top_logits, top_index = logits.topk(top_k, dim=-1)
    return torch.zeros_like(logits).scatter_(-1, top_index, torch.softmax(top_logits, dim=-1))


def route_top_k_backward(
    probs: torch.Tensor,
    top_index: torch.Tensor,
    top_weights: torch.Tensor,
    top_sum: torch.Tensor,
    grad_weights: torch.Tensor,
    *,
    grad_probs: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The gradient of the router logits given those of `Routing.weights` (and of `Routing.probs`, if any).

    Takes the forward's `Routing` fields it needs. Through the renormalisation `w_k = p_k / sum_j p_j` over the kept
    top-k, then the softmax; the selection itself carries no gradient.
    """
    grad_top = grad_weights.gather(-1, top_index)
    grad_top = (grad_top - (grad_top * top_weights).sum(dim=-1, keepdim=True)) / top_sum
    if keep is not None:
        grad_top = grad_top * keep
    grad = torch.zeros_like(probs).scatter(-1, top_index, grad_top)
    if grad_probs is not None:
        grad = grad + grad_probs
    return probs * (grad - (grad * probs).sum(dim=-1, keepdim=True))


def shared_gate(gate_logit: torch.Tensor) -> torch.Tensor:
    """The shared LoRA's per-token weight: a sigmoid of its gate logit, in float32."""
    return torch.sigmoid(at_least_float32(gate_logit))


def shared_gate_backward(gate: torch.Tensor, grad_gate: torch.Tensor) -> torch.Tensor:
    """The gradient of the gate logit given the gate's (`gate` is the forward's `shared_gate` output)."""
    return grad_gate * gate * (1.0 - gate)
