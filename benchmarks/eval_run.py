"""The full run time of one BFCL category with the quickstart agent: load it, then every item through the
role-gated agent in process (reasoner → executor, one turn per item), scored as the eval job scores it.

    # the agent `mor job submit jobs/quickstart.yaml` registered:
    .venv/bin/python benchmarks/eval_run.py --model models:/mor-agent@candidate [--category simple_python]
    # the quickstart's shape without training (base + zero adapters: times the plumbing, every turn runs to its
    # token budget, so this is the slow end):
    .venv/bin/python benchmarks/eval_run.py --untrained [--max-items 20]

With `--max-items` only the first items run and the full-category time is extrapolated (marked as such).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mor.evals.bfcl import ITEM_COUNTS, check_category
from mor.evals.bfcl_run import bfcl_metrics, run_bfcl_category
from mor.evals.targets import AgentTarget, write_untrained_agent
from mor.registry import LocalAgentDir
from mor.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _untrained_quickstart(spec_path: Path, settings: Settings, destination: Path) -> LocalAgentDir:
    """The quickstart spec's base model and MoR adapters, untrained (same tokenizer as its training would build)."""
    from mor.data import render_text
    from mor.data.prepare import prepare_dataset
    from mor.spec import TrainJobSpec, load_spec

    spec = load_spec(spec_path)
    if not isinstance(spec, TrainJobSpec) or "builtin" not in spec.base_model.model_dump():
        raise SystemExit(f"{spec_path}: --untrained needs a train spec with a builtin base model")
    dataset = prepare_dataset(spec.data, settings.cache_dir)
    return write_untrained_agent(
        destination,
        texts=[render_text(t) for t in dataset.train],
        cache_dir=settings.cache_dir,
        base=spec.base_model.model_dump()["builtin"],
        mor_config=spec.mor.adapter_config(),
        spec_text=spec_path.read_text(),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = ROOT.parent / "shared" / "benchmarks"
    parser.add_argument("--model", default=None, help="agent URI (models:/mor-agent@candidate) or directory")
    parser.add_argument("--untrained", action="store_true", help="the quickstart's shape without training")
    parser.add_argument("--spec", type=Path, default=ROOT / "jobs" / "quickstart.yaml", help="spec for --untrained")
    parser.add_argument("--category", default="simple_python", help="BFCL category (default simple_python)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MOR_BENCHMARKS_DIR") or shared))
    parser.add_argument("--max-items", type=int, default=None, help="only the first N items (time extrapolated)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if (args.model is None) == (not args.untrained):
        parser.error("give --model URI or --untrained")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    category = check_category(args.category)
    settings = Settings()
    console = Console()

    with tempfile.TemporaryDirectory(prefix="mor-eval-bench-") as scratch:
        started = time.perf_counter()
        if args.untrained:
            agent_dir = _untrained_quickstart(args.spec, settings, Path(scratch) / "agent")
            target = AgentTarget.from_agent_dir(agent_dir, name=f"untrained {args.spec.name}")
        else:
            target = AgentTarget.from_model_uri(args.model, settings)
        load_s = time.perf_counter() - started
        run = run_bfcl_category(target, category, args.data_dir, max_items=args.max_items)
    latencies = sorted(item.latency_s for item in run.items)
    items = len(run.items)
    full = ITEM_COUNTS[category]
    metrics = bfcl_metrics([run])
    table = Table(title=f"BFCL {category} with {target.name} (in process, CPU threads {_threads()})")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("load agent", f"{load_s:.1f} s")
    table.add_row("items run", f"{items} of {full}")
    table.add_row("run time", f"{run.seconds:.1f} s")
    table.add_row("items/s", f"{items / run.seconds:.3f}")
    table.add_row(
        "s/item mean · p50 · p95",
        f"{statistics.fmean(latencies):.2f} · {_pct(latencies, 0.5):.2f} · {_pct(latencies, 0.95):.2f}",
    )
    estimate = "" if items == full else " (extrapolated)"
    table.add_row(f"full category{estimate}", f"{run.seconds / items * full / 60:.1f} min")
    table.add_row("accuracy", f"{run.score.accuracy:.3f}")
    table.add_row("failures by role", ", ".join(f"{k} {v}" for k, v in sorted(run.failures_by_role.items())) or "-")
    table.add_row("failures by reason", ", ".join(f"{k} {v}" for k, v in sorted(run.failures_by_reason.items())))
    table.add_row("mean latency (metric)", f"{metrics['mean_latency_s']:.2f} s")
    console.print(table)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
