"""Comparing trained variants (MoR, its ablations, LoRA baselines) across seeds: one row per registered model.

A variant is a registered model name; each of its versions is one training run (one seed, say), evaluated by its
job. From the SQL results store: the newest succeeded run of `suite` per version (and the untrained base's runs);
from MLflow: the version's training run (`train.seed`, `trainable_params`, `train_seconds`, whether the worker group
was restarted). `summarize` gives means and sample standard deviations over the versions; a difference from the
reference variant counts as larger than the spread when `|Δ mean| > sd_ref + sd_variant` (both with ≥ 2 runs).

```python
from mor.evals.ablation import collect_runs, summarize, markdown_table, plot_summaries

runs = collect_runs(engine, settings, suite="synthetic", models=["ablation-mor", "ablation-lora-r64"])
summaries = summarize(runs, reference="ablation-mor")
print(markdown_table(summaries))
plot_summaries(summaries, Path("ablation.png"))
```
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from mor.evals.record import canonical_metrics
from mor.registry import RegistryError
from mor.registry.catalog import ModelRef, describe_version
from mor.settings import Settings
from mor.store import EvalRun, list_runs, session_scope

__all__ = [
    "UNTRAINED_PREFIX",
    "Spread",
    "VariantRun",
    "VariantSummary",
    "category_rows",
    "category_table",
    "collect_runs",
    "compare_models",
    "comparison_rows",
    "markdown_table",
    "plot_summaries",
    "report_markdown",
    "summarize",
    "summary_dict",
]

#: The URI prefix of the untrained base's evaluation runs (see mor.pipeline.evaluate).
UNTRAINED_PREFIX = "untrained:"

#: The summary metrics a comparison shows, in table order.
_SCORES = ("accuracy", "call_accuracy", "answer_accuracy")


@dataclass(frozen=True)
class VariantRun:
    """One evaluated training run of a variant: its version, seed, summary metrics and training cost."""

    variant: str
    version: str | None
    eval_run_id: int
    summary: dict[str, float]
    seed: int | None = None
    trainable_params: float | None = None
    train_seconds: float | None = None
    restarted: bool = False
    lr: float | None = None


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of `n` values (`sd` is None below two values)."""

    mean: float
    sd: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        """The spread of `values` (None when there are none)."""
        values = [float(value) for value in values if value is not None and not math.isnan(value)]
        if not values:
            return None
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))

    def beyond(self, other: Spread) -> bool | None:
        """Whether the means differ by more than the two spreads together (None: a side has fewer than 2 values)."""
        if self.sd is None or other.sd is None:
            return None
        return abs(self.mean - other.mean) > self.sd + other.sd

    def show(self, digits: int = 3) -> str:
        """`mean ± sd` (`mean` alone for one value)."""
        text = f"{self.mean:.{digits}f}"
        return text if self.sd is None else f"{text} ± {self.sd:.{digits}f}"


@dataclass
class VariantSummary:
    """A variant's runs and their spreads; `versus` compares its accuracy with the reference variant's."""

    variant: str
    runs: list[VariantRun]
    scores: dict[str, Spread] = field(default_factory=dict)
    categories: dict[str, Spread] = field(default_factory=dict)
    failures: dict[str, Spread] = field(default_factory=dict)
    trainable_params: Spread | None = None
    train_seconds: Spread | None = None
    items: set[int] = field(default_factory=set)
    delta: float | None = None  # accuracy minus the reference's
    beyond_spread: bool | None = None

    @property
    def seeds(self) -> list[int | None]:
        """The seeds of its runs, in run order."""
        return [run.seed for run in self.runs]

    @property
    def restarted(self) -> bool:
        """Whether a run's worker group was restarted (its train_seconds then omits the steps redone after it)."""
        return any(run.restarted for run in self.runs)


def _latest_per_version(runs: Sequence[EvalRun]) -> dict[tuple[str, str | None], EvalRun]:
    """The newest run of each (model name, version) or (untrained URI, None); `runs` come newest first."""
    latest: dict[tuple[str, str | None], EvalRun] = {}
    for run in runs:
        if run.model_uri.startswith(UNTRAINED_PREFIX):
            key = (run.model.name if run.model else run.model_uri, None)
        elif run.model is not None:
            key = (run.model.name, run.model.version)
        else:
            continue
        latest.setdefault(key, run)
    return latest


def _training_run(settings: Settings, name: str, version: str) -> dict[str, Any]:
    """The training run's seed, learning rate, trainable parameters, train seconds and restart of a version."""
    try:
        details = describe_version(settings, ModelRef(name, version=version))
    except RegistryError:
        return {}
    metrics, params = details.metrics, details.params

    def number(value: Any) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    seed = number(params.get("train.seed"))
    return {
        "seed": int(seed) if seed is not None else None,
        "lr": number(params.get("train.lr")),
        "trainable_params": metrics.get("trainable_params"),
        "train_seconds": metrics.get("train_seconds"),
        "restarted": bool(metrics.get("resumed_from_step")),
    }


def collect_runs(
    engine: Engine, settings: Settings, *, suite: str, models: Sequence[str], untrained: bool = True
) -> list[VariantRun]:
    """The evaluated runs of every version of `models` (registered names) on `suite`, newest evaluation of each
    version, with their training runs' seed and cost from MLflow; plus the untrained base's runs (`untrained`)."""
    with session_scope(engine) as session:
        found = list_runs(session=session, suite=suite, status="succeeded")
        latest = _latest_per_version(found)
        rows = [
            (name, version, run.id, canonical_metrics(run.summary))
            for (name, version), run in latest.items()
            if name in models or (untrained and version is None and run.model_uri.startswith(UNTRAINED_PREFIX))
        ]
    runs = []
    for name, version, run_id, summary in rows:
        training = _training_run(settings, name, version) if version is not None else {}
        runs.append(VariantRun(variant=name, version=version, eval_run_id=run_id, summary=dict(summary), **training))
    order = {name: index for index, name in enumerate(models)}
    return sorted(
        runs, key=lambda run: (order.get(run.variant, -1), int(run.version) if run.version else 0, run.eval_run_id)
    )


def summarize(runs: Sequence[VariantRun], *, reference: str | None = None) -> list[VariantSummary]:
    """One summary per variant (in the order of `runs`): spreads of the scores, categories, failures per role,
    trainable parameters and train seconds; each compared with `reference` (default: the first trained variant)."""
    by_variant: dict[str, list[VariantRun]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    summaries = []
    for variant, group in by_variant.items():
        summary = VariantSummary(variant=variant, runs=group)
        for key in _SCORES:
            spread = Spread.of([run.summary[key] for run in group if key in run.summary])
            if spread is not None:
                summary.scores[key] = spread
        categories = sorted({key for run in group for key in run.summary if key.startswith("accuracy/")})
        for key in categories:
            spread = Spread.of([run.summary.get(key, 0.0) for run in group])
            if spread is not None:
                summary.categories[key.removeprefix("accuracy/")] = spread
        roles = sorted({key for run in group for key in run.summary if key.startswith("failures/")})
        for key in roles:
            spread = Spread.of([run.summary.get(key, 0.0) for run in group])  # a role without failures has no key
            if spread is not None:
                summary.failures[key.removeprefix("failures/")] = spread
        summary.trainable_params = Spread.of([run.trainable_params for run in group if run.trainable_params])
        summary.train_seconds = Spread.of([run.train_seconds for run in group if run.train_seconds])
        summary.items = {int(run.summary.get("items", 0)) for run in group}
        summaries.append(summary)
    trained = [s for s in summaries if s.runs[0].version is not None]
    base = next((s for s in summaries if s.variant == reference), trained[0] if trained else None)
    if base is not None and "accuracy" in base.scores:
        for summary in summaries:
            if summary is base or "accuracy" not in summary.scores:
                continue
            summary.delta = summary.scores["accuracy"].mean - base.scores["accuracy"].mean
            summary.beyond_spread = summary.scores["accuracy"].beyond(base.scores["accuracy"])
    return summaries


def _count(spread: Spread | None, scale: float = 1.0, suffix: str = "", digits: int = 2) -> str:
    if spread is None:
        return "—"
    text = f"{spread.mean / scale:.{digits}f}{suffix}"
    return text if not spread.sd else f"{text} ± {spread.sd / scale:.{digits}f}"


def _versus(summary: VariantSummary) -> str:
    if summary.delta is None:
        return "reference" if summary.runs[0].version is not None else "—"
    verdict = {True: "beyond spread", False: "within spread", None: "n < 2"}[summary.beyond_spread]
    return f"{summary.delta:+.3f} ({verdict})"


def comparison_rows(summaries: Sequence[VariantSummary]) -> tuple[list[str], list[list[str]], list[str]]:
    """The comparison's header, one row per variant (runs and seeds, trainable parameters, train seconds, held-out
    accuracy, call / answer accuracy, failures by role as mean items per run, the difference from the reference)
    and the notes to print under it."""
    roles = sorted({role for summary in summaries for role in summary.failures})
    header = ["variant", "runs (seeds)", "trainable params", "train s", "accuracy", "call acc", "answer acc"]
    header += [f"fail {role}" for role in roles] + ["vs reference"]
    rows = []
    for summary in summaries:
        seeds = ",".join("?" if seed is None else str(seed) for seed in summary.seeds)
        seconds = _count(summary.train_seconds, digits=0) + (" *" if summary.restarted else "")
        rows.append(
            [
                summary.variant,
                f"{len(summary.runs)} ({seeds})" if summary.runs[0].version is not None else str(len(summary.runs)),
                _count(summary.trainable_params, 1e6, "M"),
                seconds,
                *(summary.scores[key].show() if key in summary.scores else "—" for key in _SCORES),
                *(_count(summary.failures[role], digits=1) if role in summary.failures else "0" for role in roles),
                _versus(summary),
            ]
        )
    notes = []
    if any(summary.restarted for summary in summaries):
        notes.append("* a worker group was restarted: train s omits the steps it lost and redid after the restart.")
    items = {count for summary in summaries for count in summary.items}
    if len(items) > 1:
        notes.append(f"Runs scored different numbers of items ({sorted(items)}): compare like with like.")
    return header, rows, notes


def category_rows(summaries: Sequence[VariantSummary]) -> tuple[list[str], list[list[str]]]:
    """Held-out accuracy per category (mean ± sd over runs): the header and one row per variant."""
    categories = sorted({category for summary in summaries for category in summary.categories})
    rows = [
        [summary.variant, *(summary.categories[c].show(2) if c in summary.categories else "—" for c in categories)]
        for summary in summaries
    ]
    return ["variant", *categories], rows


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown_table(summaries: Sequence[VariantSummary]) -> str:
    """The comparison (see `comparison_rows`) as a Markdown table with its notes."""
    header, rows, notes = comparison_rows(summaries)
    return "\n".join(_markdown(header, rows) + ([""] + notes if notes else [])) + "\n"


def category_table(summaries: Sequence[VariantSummary]) -> str:
    """Held-out accuracy per category (mean ± sd over runs) as a Markdown table, one row per variant."""
    return "\n".join(_markdown(*category_rows(summaries))) + "\n"


def summary_dict(summary: VariantSummary) -> dict[str, Any]:
    """A variant's comparison as plain data (for `--json`): its runs, the spreads and the difference from the
    reference."""

    def spread(value: Spread | None) -> dict[str, Any] | None:
        return None if value is None else {"mean": value.mean, "sd": value.sd, "n": value.n}

    return {
        "variant": summary.variant,
        "runs": [run.__dict__ for run in summary.runs],
        "scores": {key: spread(value) for key, value in summary.scores.items()},
        "categories": {key: spread(value) for key, value in summary.categories.items()},
        "failures": {key: spread(value) for key, value in summary.failures.items()},
        "trainable_params": spread(summary.trainable_params),
        "train_seconds": spread(summary.train_seconds),
        "delta": summary.delta,
        "beyond_spread": summary.beyond_spread,
    }


def compare_models(
    engine: Engine,
    settings: Settings,
    *,
    suite: str,
    models: Sequence[str],
    reference: str | None = None,
    missing_ok: bool = False,
) -> list[VariantSummary]:
    """`collect_runs` then `summarize` against `reference` (default: the first of `models` that has runs). Raises
    ValueError when no model has an evaluated run on `suite`, when one has none (unless `missing_ok`: it is left out)
    and when `reference` is not one of `models`."""
    if reference is not None and reference not in models:
        raise ValueError(f"--reference {reference!r} is not one of the compared models ({', '.join(models)})")
    runs = collect_runs(engine, settings, suite=suite, models=models)
    if not any(run.version is not None for run in runs):
        raise ValueError(
            f"no succeeded {suite} evaluation of a registered version of {', '.join(models)}: "
            "train and evaluate them first (a train spec's eval section, or mor eval run --model NAME@VERSION)"
        )
    missing = [model for model in models if not any(run.variant == model for run in runs)]
    if missing and not missing_ok:
        raise ValueError(f"no succeeded {suite} evaluation of {', '.join(missing)}: check the names (mor model list)")
    present = [model for model in models if model not in missing]
    return summarize(runs, reference=reference if reference in present else present[0])


def report_markdown(summaries: Sequence[VariantSummary], suite: str) -> str:
    """The variants table and the per-category table, as Markdown sections of `suite`."""
    return (
        f"## {suite}: variants\n\n{markdown_table(summaries)}\n"
        f"## {suite}: accuracy per category\n\n{category_table(summaries)}"
    )


def plot_summaries(summaries: Sequence[VariantSummary], path: Path) -> Path:
    """A PNG: held-out accuracy per variant (mean, sd bars, each run a dot) and accuracy against trainable
    parameters; returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [summary for summary in summaries if "accuracy" in summary.scores]
    figure, (bars, scatter) = plt.subplots(1, 2, figsize=(12, 4.8))
    positions = list(range(len(shown)))
    means = [summary.scores["accuracy"].mean for summary in shown]
    errors = [summary.scores["accuracy"].sd or 0.0 for summary in shown]
    bars.bar(positions, means, yerr=errors, capsize=4, color="#8fb3d9", edgecolor="#2f5f8f")
    for position, summary in zip(positions, shown, strict=True):
        values = [run.summary["accuracy"] for run in summary.runs if "accuracy" in run.summary]
        bars.scatter([position] * len(values), values, color="black", s=12, zorder=3)
    bars.set_xticks(positions, [summary.variant for summary in shown], rotation=30, ha="right")
    bars.set_ylabel("held-out accuracy")
    bars.set_ylim(0, 1)
    bars.set_title("Accuracy per variant (mean ± sd; dots: runs)")
    bars.grid(True, axis="y", alpha=0.3)
    labelled: list[tuple[float, float]] = []  # points already labelled: a label near one goes below the last
    for summary in shown:
        if summary.trainable_params is None:
            continue
        accuracy = summary.scores["accuracy"]
        x, y = summary.trainable_params.mean / 1e6, accuracy.mean
        scatter.errorbar(x, y, yerr=accuracy.sd or 0.0, fmt="o", capsize=4)
        near = sum(1 for px, py in labelled if abs(px - x) < 0.25 and abs(py - y) < 0.05)
        labelled.append((x, y))
        offset = (6, 5 - 11 * near)
        scatter.annotate(summary.variant, (x, y), textcoords="offset points", xytext=offset, fontsize="small")
    scatter.set_xlabel("trainable parameters (M)")
    scatter.set_ylabel("held-out accuracy")
    scatter.set_ylim(0, 1)
    scatter.set_title("Accuracy against trainable parameters")
    scatter.grid(True, alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
