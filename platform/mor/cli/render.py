"""Rendering helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.evals.record import failures_by_role
from mor.spec import DataJobSpec, SpecError, TrainJobSpec

__all__ = ["failures_text", "print_spec_error", "spec_table"]

_ROLE_ORDER = ("reasoner", "executor", "summarizer")


def spec_table(spec: TrainJobSpec | DataJobSpec, source: str) -> Table:
    """A short table of what a spec will do."""
    table = Table(title=f"{source}: {spec.kind} job '{spec.name}'", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    if isinstance(spec, TrainJobSpec):
        base = spec.base_model.model_dump(mode="json")
        table.add_row("base model", ", ".join(f"{k}: {v}" for k, v in base.items() if v is not None))
        roles = ", ".join(
            f"{name} ({'shared + ' if r.shared else ''}{r.routed} routed, top-{r.top_k})"
            for name, r in spec.mor.roles.items()
        )
        table.add_row("roles", roles)
        table.add_row("adapters", f"rank {spec.mor.rank} on {', '.join(spec.mor.target_modules)}")
        table.add_row(
            "training",
            f"{spec.train.workers} worker(s), {'GPU' if spec.train.use_gpu else 'CPU'}, {spec.train.epochs:g} epochs, "
            f"lr {spec.train.lr:g}, batch {spec.train.batch_size}",
        )
        if spec.register_ is not None:
            table.add_row("register", f"{spec.register_.model_name}@{spec.register_.alias}")
        if spec.eval is not None:
            table.add_row("eval", ", ".join(spec.eval.suites))
    table.add_row("data", f"{len(spec.data.sources)} source(s)")
    return table


def print_spec_error(console: Console, error: SpecError) -> None:
    """Print every problem of a refused spec."""
    console.print(f"[bold red]Refused:[/] {len(error.problems)} problem(s) in {escape(error.source)}")
    for problem in error.problems:
        console.print(f"  [red]•[/] {escape(error.source)}: {escape(problem)}", highlight=False, soft_wrap=True)


def failures_text(summary: Mapping[str, Any] | None) -> str:
    """Failed items by role, e.g. `reasoner 2, executor 1` (empty when none); reads either metric naming scheme."""
    counts = failures_by_role(summary)
    ordered = sorted(counts, key=lambda role: (_ROLE_ORDER.index(role) if role in _ROLE_ORDER else 99, role))
    return ", ".join(f"{role} {counts[role]}" for role in ordered)
