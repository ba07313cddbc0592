"""A straightforward dense implementation of the MoR math, written independently of the fast layer.

Every role's every LoRA is computed for every token, weighted per token, and masked by role, one LoRA at a time.
"""

from __future__ import annotations

import torch

from mor.model import MoRLinear


def dense_delta(layer: MoRLinear, x2d: torch.Tensor, role_ids: torch.Tensor) -> torch.Tensor:
    """The MoR delta `(tokens, out)` of `layer` for inputs `x2d` whose tokens have roles `role_ids` (flat)."""
    delta = torch.zeros(x2d.shape[0], layer.out_features, dtype=torch.float32)
    for role_id, role in enumerate(layer.role_weights):
        per_lora = torch.stack(
            [(x2d @ role.lora_A(i).T) @ role.lora_B(i).T for i in range(role.num_loras)], dim=1
        )  # (tokens, loras, out)
        weights = []
        if role.shared:
            weights.append(torch.sigmoid(x2d @ role.gate_weight.T))
        if role.routed:
            probs = torch.softmax(x2d @ role.router_weight.T, dim=-1)
            keep = torch.zeros_like(probs, dtype=torch.bool)
            keep.scatter_(1, probs.topk(role.top_k, dim=-1).indices, True)
            kept = torch.where(keep, probs, torch.zeros_like(probs))
            weights.append(kept / kept.sum(dim=-1, keepdim=True))
        weight = torch.cat(weights, dim=-1)  # (tokens, loras)
        role_delta = layer.scaling * torch.einsum("tl,tlo->to", weight, per_lora)
        delta = delta + role_delta * (role_ids == role_id).unsqueeze(-1)
    return delta


def dense_forward(layer: MoRLinear, x: torch.Tensor, role_ids: torch.Tensor) -> torch.Tensor:
    """Base output plus the dense MoR delta, shaped like the layer's output."""
    x2d = x.reshape(-1, layer.in_features)
    out = layer.base_layer(x2d) + dense_delta(layer, x2d, role_ids.reshape(-1))
    return out.reshape(*x.shape[:-1], layer.out_features)
