"""Rendering helpers shared by the CLI commands."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.spec import DataJobSpec, SpecError, TrainJobSpec

__all__ = ["spec_table", "print_spec_error"]


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
