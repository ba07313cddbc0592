"""The MoR training objective: L = CE + α1·L_aux + α2·L_orth, with the CE broken down per role for logging."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Objective", "role_cross_entropy", "role_label_counts"]

IGNORE_INDEX = -100


@dataclass
class Objective:
    """The loss terms of one step; `total` is what is back-propagated."""

    total: torch.Tensor
    ce: torch.Tensor
    aux: torch.Tensor
    orth: torch.Tensor
    per_role_ce: dict[str, float]
    label_tokens: int


def role_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, role_ids: torch.Tensor, role_names: list[str]
) -> tuple[torch.Tensor, dict[str, float], int]:
    """Next-token CE averaged over label tokens, and its mean per role (roles without labels are left out).

    A label at position t is predicted from position t-1 and belongs to the role of token t.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    shift_roles = role_ids[:, 1:]
    token_loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    mask = shift_labels.reshape(-1) != IGNORE_INDEX
    count = int(mask.sum())
    ce = token_loss.sum() / max(count, 1)
    per_role: dict[str, float] = {}
    flat_roles = shift_roles.reshape(-1)
    with torch.no_grad():
        for role_id, name in enumerate(role_names):
            role_mask = mask & (flat_roles == role_id)
            role_count = int(role_mask.sum())
            if role_count:
                per_role[name] = float(token_loss[role_mask].sum() / role_count)
    return ce, per_role, count


def role_label_counts(labels: torch.Tensor, role_ids: torch.Tensor, role_names: list[str]) -> dict[str, int]:
    """Label tokens per role, attributed as in `role_cross_entropy` (roles without labels are left out)."""
    shift_labels = labels[:, 1:]
    shift_roles = role_ids[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    counts: dict[str, int] = {}
    for role_id, name in enumerate(role_names):
        count = int((mask & (shift_roles == role_id)).sum())
        if count:
            counts[name] = count
    return counts
