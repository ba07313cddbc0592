"""One optimizer step: gradients accumulated over micro-batches in the chosen precision, then clipping and the
update. Plain PyTorch; the same step runs in a Ray Train worker and, unwrapped, in a single process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from mor.model import AdapterModel
from mor.train.objective import IGNORE_INDEX, Objective, role_cross_entropy, role_label_counts
from mor.train.precision import Precision, autocast, grad_scaler

__all__ = ["TrainStep", "Batch"]

#: A collated micro-batch: input_ids, attention_mask, labels and role_ids, each `(rows, length)`.
Batch = dict[str, torch.Tensor]


def _label_tokens(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


@dataclass
class TrainStep:
    """Runs optimizer steps, each over a window of micro-batches.

    The window's loss is the one a single batch of all its sequences would give: each micro-batch's CE is weighted
    by its share of the window's label tokens (1/N for equal shares), the load-balancing loss is averaged over the
    N micro-batches (each routes on its own, as each worker does), and the orthogonality loss, a function of the
    weights alone, is added once (both are 0 for a plain LoRA). `model` is what is called: the MoRModel or LoRAModel
    itself or its DDP/FSDP wrapper. On every
    micro-batch but the last, the wrapper's gradient synchronisation is skipped (`no_sync`); `sync_gradients`, when
    given, runs once per window on the trainable parameters before clipping (FSDP leaves the adapters to it).
    """

    model: nn.Module
    mor_model: AdapterModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    aux_weight: float
    orth_weight: float
    grad_clip: float
    precision: Precision = "fp32"
    sync_gradients: Callable[[list[nn.Parameter]], None] | None = None
    trainable: list[nn.Parameter] = field(init=False)
    device: torch.device = field(init=False)
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        self.trainable = [p for p in self.mor_model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("model: no trainable parameters; apply_mor or load_mor leaves the adapters trainable")
        self.device = self.trainable[0].device
        self.scaler = grad_scaler(self.precision, self.device.type)

    def accumulate(self, micro_batches: Sequence[Batch]) -> Objective:
        """Forward and backward every micro-batch, leaving the window's gradients in `.grad`; returns its losses."""
        if not micro_batches:
            raise ValueError("micro_batches: got none; a step needs at least one micro-batch")
        batches = [{key: value.to(self.device) for key, value in batch.items()} for batch in micro_batches]
        role_names = self.mor_model.role_names
        total_labels = sum(_label_tokens(batch["labels"]) for batch in batches)
        window_labels = max(total_labels, 1)
        count = len(batches)
        no_sync = getattr(self.model, "no_sync", None)
        ce_sum = aux_sum = 0.0
        orth = torch.zeros(())
        role_sums: dict[str, float] = {}
        role_counts: dict[str, int] = {}
        for index, batch in enumerate(batches):
            last = index == count - 1
            with nullcontext() if last or no_sync is None else no_sync():
                with autocast(self.precision, self.device.type):
                    output = self.model(
                        input_ids=batch["input_ids"],
                        attention_mask=batch["attention_mask"],
                        role_ids=batch["role_ids"],
                        use_cache=False,
                    )
                ce, per_role, labels = role_cross_entropy(output.logits, batch["labels"], batch["role_ids"], role_names)
                aux = self.mor_model.aux_loss().float()
                loss = ce * (labels / window_labels) + self.aux_weight * aux / count
                if last:
                    orth = self.mor_model.orth_loss().float()
                    loss = loss + self.orth_weight * orth
                self.scaler.scale(loss).backward()
            ce_sum += float(ce.detach()) * labels
            aux_sum += float(aux.detach())
            for name, tokens in role_label_counts(batch["labels"], batch["role_ids"], role_names).items():
                role_sums[name] = role_sums.get(name, 0.0) + per_role[name] * tokens
                role_counts[name] = role_counts.get(name, 0) + tokens
        ce_window = torch.tensor(ce_sum / window_labels)
        aux_window = torch.tensor(aux_sum / count)
        orth = orth.detach().cpu()
        return Objective(
            total=ce_window + self.aux_weight * aux_window + self.orth_weight * orth,
            ce=ce_window,
            aux=aux_window,
            orth=orth,
            per_role_ce={name: role_sums[name] / role_counts[name] for name in role_sums},
            label_tokens=total_labels,
        )

    def update(self) -> float:
        """Synchronise (when asked), unscale, clip, step the optimizer and the LR schedule, clear the gradients.

        Returns the gradient norm before clipping.
        """
        if self.sync_gradients is not None:
            self.sync_gradients(self.trainable)
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip)
        self.scaler.step(self.optimizer)  # skipped by an fp16 scaler when the gradients overflowed
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def __call__(self, micro_batches: Sequence[Batch]) -> tuple[Objective, float]:
        """One optimizer step over `micro_batches`: (the window's loss terms, the gradient norm)."""
        objective = self.accumulate(micro_batches)
        return objective, self.update()
