"""Suite dispatch: which suite and categories a name means, how the model under test becomes a target, and one
uniform result per run — the per-item SQL rows plus flat summary metrics.

Suites:
- `bfcl[/CATEGORY]`: the BFCL v4 single-turn categories (`bfcl` alone: all of them), any target;
- `stabletoolbench[/GROUP]`: StableToolBench query groups, any target (by `mor.evals.stabletoolbench`);
- `synthetic`: the held-out synthetic test set of the agent's own training spec; in-process agents only.

Models: `models:/name@alias`, `models:/name/version`, `runs:/...` or an agent directory load the role-gated agent
in process; an `http(s)://.../v1` URL is an OpenAI-compatible endpoint (its model name and the environment
variable holding its API key come from the run options — a key is never stored).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.evals.bfcl import CATEGORIES as BFCL_CATEGORIES
from mor.evals.bfcl import BfclDataError, check_category
from mor.evals.bfcl_run import bfcl_metrics, run_bfcl_category
from mor.evals.record import row_metrics, synthetic_rows
from mor.evals.stabletoolbench import GROUPS as STABLETOOLBENCH_GROUPS
from mor.evals.stabletoolbench import MODES as STB_MODES
from mor.evals.target import ChatTarget
from mor.evals.targets import AgentTarget, OpenAITarget
from mor.settings import Settings
from mor.store import NewItemResult

__all__ = [
    "RUN_OPTIONS",
    "STABLETOOLBENCH_GROUPS",
    "SUITES",
    "ModelInfo",
    "Progress",
    "SuiteResult",
    "SuiteSelection",
    "build_target",
    "check_options",
    "is_endpoint",
    "parse_suite",
    "run_suite",
]

SUITES: tuple[str, ...] = ("bfcl", "stabletoolbench", "synthetic")
# Run options (stored in a run's / schedule's config) and what each one means.
RUN_OPTIONS: dict[str, str] = {
    "max_items": "evaluate only the first N items of each category (a smoke run; not a leaderboard number)",
    "data_dir": "directory holding bfcl/ and stabletoolbench/ (default: MOR_BENCHMARKS_DIR where the job runs)",
    "endpoint_model": "model name sent to an http(s) endpoint (default: the first model it lists)",
    "api_key_env": "environment variable holding the endpoint's API key where the job runs",
    "max_steps": "reasoner turns of the in-process agent per episode",
    "max_new_tokens": "token budget of one role turn of the in-process agent (every role)",
    "mode": "StableToolBench search: cot (CoT/ReAct) or dfsdt (depth-first search)",
    "api_url": "StableToolBench: URL of a running virtual API server (default: one started for the run over "
    "the response cache in MOR_HOME/cache/stabletoolbench)",
    "simulator_url": "StableToolBench: OpenAI-compatible endpoint answering tool calls missing from the cache",
    "simulator_model": "StableToolBench: model name of the simulator endpoint",
    "simulator_api_key_env": "StableToolBench: environment variable holding the simulator endpoint's API key",
    "judge_url": "StableToolBench: OpenAI-compatible endpoint of the pass-rate judge (else the rule-based judge)",
    "judge_model": "StableToolBench: model name of the judge endpoint",
    "judge_api_key_env": "StableToolBench: environment variable holding the judge endpoint's API key",
}
Progress = Callable[[str, int, int], None]
"""(stage, done, total): called after each item."""


@dataclass(frozen=True)
class SuiteSelection:
    """A suite and the categories of it to run (in run order)."""

    suite: str
    categories: tuple[str, ...]

    @property
    def label(self) -> str:
        """`suite/category` for one category, else the suite name."""
        return f"{self.suite}/{self.categories[0]}" if len(self.categories) == 1 else self.suite


@dataclass
class SuiteResult:
    """One evaluation: a row per item, flat summary metrics, and the judge kind where a judge decided."""

    selection: SuiteSelection
    rows: list[NewItemResult] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    judge_kind: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a model URI resolved to (the `evaluated_models` row)."""

    uri: str
    name: str
    version: str | None = None
    base_model: str | None = None


def _unknown_suite(text: str) -> ValueError:
    return ValueError(
        f"suite: got {text!r}, must be one of {', '.join(SUITES)}, optionally with a category "
        "(bfcl/CATEGORY, stabletoolbench/GROUP); e.g. bfcl/simple_python"
    )


def parse_suite(text: str, categories: Sequence[str] = ()) -> SuiteSelection:
    """`bfcl/simple_python` → (bfcl, [simple_python]); a bare suite takes `categories`, else all of its own.

    Raises ValueError naming the bad suite or category and the valid ones.
    """
    suite, _, category = text.strip().partition("/")
    if suite not in SUITES:
        raise _unknown_suite(text)
    wanted = [category] if category else [c.strip() for c in categories if c.strip()]
    if category and categories and list(categories) != [category]:
        raise ValueError(
            f"categories: got {list(categories)} with suite {text!r}, which names its category already; give "
            f"either {suite}/CATEGORY or {suite} with categories"
        )
    if suite == "bfcl":
        try:
            chosen = [check_category(name) for name in wanted] or list(BFCL_CATEGORIES)
        except BfclDataError as error:
            raise ValueError(str(error)) from None
    elif suite == "stabletoolbench":
        bad = [name for name in wanted if name not in STABLETOOLBENCH_GROUPS]
        if bad:
            raise ValueError(
                f"category: got {bad[0]!r}, StableToolBench groups are {', '.join(STABLETOOLBENCH_GROUPS)}; "
                "e.g. stabletoolbench/G1_instruction"
            )
        chosen = wanted or list(STABLETOOLBENCH_GROUPS)
    else:
        if wanted and wanted != ["all"]:
            raise ValueError(f"category: got {wanted}, the synthetic suite has no categories; use 'synthetic'")
        chosen = ["all"]
    duplicates = sorted(name for name, count in Counter(chosen).items() if count > 1)
    if duplicates:
        raise ValueError(f"categories: {duplicates} given twice; name each category once")
    return SuiteSelection(suite, tuple(chosen))


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate run options (see `RUN_OPTIONS`) and return them as plain JSON-able values."""
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"options: {unknown} are not run options; known: {', '.join(RUN_OPTIONS)}")
    out = dict(options)
    for key in ("max_items", "max_steps", "max_new_tokens"):
        value = out.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{key}: got {value!r}, must be a whole number >= 1 (or left out)")
    if out.get("mode") not in (None, *STB_MODES):
        raise ValueError(f"mode: got {out['mode']!r}, must be one of {', '.join(STB_MODES)}")
    for service in ("simulator", "judge"):
        if out.get(f"{service}_url") and not out.get(f"{service}_model"):
            raise ValueError(
                f"{service}_model: not given with {service}_url {out[f'{service}_url']!r}; name the "
                f"model the {service} endpoint serves, e.g. {service}_model: gpt-4o-mini"
            )
    if out.get("data_dir") is not None:
        out["data_dir"] = str(Path(str(out["data_dir"])).expanduser().resolve())
    return {key: value for key, value in out.items() if value is not None}


def is_endpoint(model_uri: str) -> bool:
    """Whether a model URI names an OpenAI-compatible endpoint rather than a registered agent."""
    return model_uri.startswith(("http://", "https://"))


def build_target(model_uri: str, settings: Settings, options: Mapping[str, Any]) -> tuple[ChatTarget, ModelInfo]:
    """The target a model URI names, and what it resolved to (a registered version, a directory, an endpoint)."""
    if is_endpoint(model_uri):
        key_env = options.get("api_key_env")
        api_key = os.environ.get(str(key_env)) if key_env else None
        if key_env and api_key is None:
            raise ValueError(
                f"api_key_env: {key_env!r} is not set in the job's environment; set it where the job runs "
                "(e.g. in the cluster's environment) or leave api_key_env out for servers without a key"
            )
        endpoint = OpenAITarget(model_uri, api_key, options.get("endpoint_model"))
        return endpoint, ModelInfo(uri=model_uri, name=endpoint.model)
    from mor.agent import AgentConfig
    from mor.registry import resolve_model

    agent_dir = resolve_model(model_uri, settings)
    config: AgentConfig | None = None
    if options.get("max_steps") or options.get("max_new_tokens"):
        budget = options.get("max_new_tokens")
        config = AgentConfig(
            max_steps=int(options.get("max_steps") or AgentConfig.max_steps),
            max_new_tokens={} if budget else AgentConfig().max_new_tokens,
            default_max_new_tokens=int(budget or AgentConfig.default_max_new_tokens),
        )
    target = AgentTarget.from_agent_dir(agent_dir, config=config, name=model_uri)
    info = ModelInfo(
        uri=model_uri,
        name=agent_dir.model_name or agent_dir.root.name,
        version=agent_dir.version,
        base_model=f"{agent_dir.base.kind}:{agent_dir.base.name}",
    )
    return target, info


def _data_dir(options: Mapping[str, Any], settings: Settings, suite: str) -> Path:
    given = options.get("data_dir")
    root = Path(str(given)) if given else settings.benchmarks_dir
    if root is None:
        raise ValueError(
            f"data_dir: the {suite} suite reads benchmark data, and neither the run's data_dir nor "
            "MOR_BENCHMARKS_DIR is set; pass --data-dir DIR (the directory holding bfcl/ and stabletoolbench/) "
            "or set MOR_BENCHMARKS_DIR where the job runs"
        )
    return root.expanduser()


def _run_bfcl(
    selection: SuiteSelection,
    target: ChatTarget,
    settings: Settings,
    options: Mapping[str, Any],
    progress: Progress | None,
) -> SuiteResult:
    root = _data_dir(options, settings, "bfcl")
    runs = []
    for category in selection.categories:
        report = (lambda done, total, c=category: progress(f"bfcl/{c}", done, total)) if progress else None
        runs.append(run_bfcl_category(target, category, root, max_items=options.get("max_items"), progress=report))
    rows = [item.to_row() for run in runs for item in run.items]
    return SuiteResult(selection, rows, bfcl_metrics(runs))


def _endpoint_key(options: Mapping[str, Any], name: str) -> str | None:
    env = options.get(name)
    if not env:
        return None
    value = os.environ.get(str(env))
    if value is None:
        raise ValueError(f"{name}: {env!r} is not set in the job's environment; set it where the job runs")
    return value


def _run_stabletoolbench(
    selection: SuiteSelection,
    target: ChatTarget,
    settings: Settings,
    options: Mapping[str, Any],
    progress: Progress | None,
) -> SuiteResult:
    from mor.evals import stabletoolbench as stb

    root = _data_dir(options, settings, "stabletoolbench")
    judge: stb.Judge | None = None
    if options.get("judge_url"):
        judge = stb.LlmJudge(
            stb.LlmEndpoint(options["judge_url"], options["judge_model"], _endpoint_key(options, "judge_api_key_env"))
        )
    simulator: stb.Simulator | None = None
    if options.get("simulator_url"):
        simulator = stb.LlmSimulator(
            stb.LlmEndpoint(
                options["simulator_url"], options["simulator_model"], _endpoint_key(options, "simulator_api_key_env")
            )
        )
    api = options.get("api_url")
    server = {"api": api} if api else {"cache_dir": settings.cache_dir / "stabletoolbench", "simulator": simulator}
    rows: list[NewItemResult] = []
    metrics: dict[str, float] = {}
    scores: list[float] = []
    judge_kinds: set[str] = set()
    for group in selection.categories:
        report = (lambda done, total, g=group: progress(f"stabletoolbench/{g}", done, total)) if progress else None
        result = stb.run_group(
            target,
            group,
            root,
            judge=judge,
            mode=options.get("mode", "cot"),
            max_items=options.get("max_items"),
            progress=report,
            **server,
        )
        judge_kinds.add(result.summary.judge_kind)
        metrics.update(result.summary.metrics(prefix=f"{group}/"))
        for item in result.items:
            scores.append(item.score)
            rows.append(
                NewItemResult(
                    category=item.category,
                    item_id=item.item_id,
                    passed=item.passed,
                    failure_reason=item.failure_reason,
                    failing_role=item.failing_role,
                    output=item.output,
                    detail=f"{item.judge_kind} judge: score {item.score:.2f}",
                    latency_ms=round(item.latency_s * 1000.0, 3),
                )
            )
    if len(judge_kinds) > 1:  # one judge per run; both kinds in one run would mix scores that never mix
        raise ValueError(f"judge: items were judged by {sorted(judge_kinds)}; one run holds one judge kind only")
    metrics.update(row_metrics(rows))
    metrics["sopr"] = sum(scores) / len(scores) if scores else 0.0
    return SuiteResult(selection, rows, metrics, judge_kinds.pop() if judge_kinds else None)


def _run_synthetic(
    selection: SuiteSelection,
    target: ChatTarget,
    settings: Settings,
    options: Mapping[str, Any],
    progress: Progress | None,
) -> SuiteResult:
    agent_dir = target.agent_dir if isinstance(target, AgentTarget) else None
    if not isinstance(target, AgentTarget) or agent_dir is None:
        raise ValueError(
            "suite: synthetic evaluates an in-process agent on the held-out set of its own training data; "
            "give a models:/ URI or an agent directory, not an endpoint"
        )
    from mor.data.prepare import prepare_dataset
    from mor.evals.synthetic import evaluate_synthetic
    from mor.spec import EvalSpec, TrainJobSpec, parse_spec

    spec = parse_spec(agent_dir.spec_text, source=str(agent_dir.spec_path))
    if not isinstance(spec, TrainJobSpec):
        raise ValueError(f"{agent_dir.spec_path}: kind {spec.kind!r}; the synthetic suite needs the train spec")
    test = prepare_dataset(spec.data, settings.cache_dir).test
    result = evaluate_synthetic(
        target.agent,
        test,
        max_items=options.get("max_items"),
        batch_size=(spec.eval or EvalSpec()).batch_size,
        progress=(lambda done, total: progress("synthetic", done, total)) if progress else None,
    )
    rows, metrics = synthetic_rows(result)
    return SuiteResult(selection, rows, metrics)


_RUNNERS = {"bfcl": _run_bfcl, "stabletoolbench": _run_stabletoolbench, "synthetic": _run_synthetic}


def run_suite(
    selection: SuiteSelection,
    target: ChatTarget,
    settings: Settings,
    options: Mapping[str, Any] | None = None,
    *,
    progress: Progress | None = None,
) -> SuiteResult:
    """Run `target` on every category of `selection`; `options` are run options (see `RUN_OPTIONS`)."""
    return _RUNNERS[selection.suite](selection, target, settings, check_options(options or {}), progress)
