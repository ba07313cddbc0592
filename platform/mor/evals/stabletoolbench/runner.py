"""Running a StableToolBench group against a model under test, and scoring it: the runner's entry point.

Pure library: it loads the queries, talks to the virtual API server (given by URL, or started here over a cache
directory for the run), runs the agent loop, judges every item and returns rows and a summary; the caller stores
them.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mor.evals.stabletoolbench.client import VirtualApiClient
from mor.evals.stabletoolbench.data import SUITE, ApiCatalog, StbQuery, check_group, load_group
from mor.evals.stabletoolbench.judge import Judge, JudgeInput, RuleBasedJudge, Verdict
from mor.evals.stabletoolbench.loop import MODES, ApiCaller, End, Episode, LoopConfig, Mode, run_episode
from mor.evals.stabletoolbench.server import VirtualApiServer
from mor.evals.stabletoolbench.simulator import Simulator
from mor.evals.target import ChatTarget

__all__ = [
    "FAILURE_REASONS",
    "StbItemResult",
    "StbRunResult",
    "StbSummary",
    "run_group",
    "score_episode",
    "summarize",
]

# Why an item failed: the chain's end, or, for an answered item the judge rejected, whether every API call failed.
FAILURE_REASONS: tuple[str, ...] = (
    "gave_up",
    "step_limit",
    "no_finish",
    "budget_exhausted",
    "tool_errors",
    "judged_unsolved",
)


@dataclass
class StbItemResult:
    """The result of one query: passed (judged solved), why not, which role failed, the run and its judging."""

    item_id: str
    category: str
    passed: bool
    failure_reason: str | None
    failing_role: str | None
    output: dict[str, Any]
    latency_s: float
    judge_kind: str
    score: float

    def to_row(self) -> dict[str, Any]:
        """The result as plain data (JSON-able) for SQL rows and artifacts."""
        return asdict(self)


@dataclass
class StbSummary:
    """Scores of one group's run: pass rate (majority verdicts) and SoPR (solve rate), failures and latency."""

    group: str
    mode: str
    judge_kind: str
    items: int
    passed: int
    pass_rate: float
    sopr: float
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    failures_by_role: dict[str, int] = field(default_factory=dict)
    mean_latency_s: float = 0.0
    p95_latency_s: float = 0.0
    mean_queries: float = 0.0

    def metrics(self, prefix: str | None = None) -> dict[str, float]:
        """Flat numeric metrics, e.g. `stabletoolbench/G1_instruction/sopr`."""
        prefix = prefix if prefix is not None else f"{SUITE}/{self.group}/"
        out = {
            f"{prefix}items": float(self.items),
            f"{prefix}pass_rate": self.pass_rate,
            f"{prefix}sopr": self.sopr,
            f"{prefix}mean_latency_s": self.mean_latency_s,
            f"{prefix}p95_latency_s": self.p95_latency_s,
            f"{prefix}mean_queries": self.mean_queries,
        }
        out.update({f"{prefix}failures/{reason}": float(n) for reason, n in self.failures_by_reason.items()})
        out.update({f"{prefix}failures_by_role/{role}": float(n) for role, n in self.failures_by_role.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass
class StbRunResult:
    """Per-item results and their summary."""

    items: list[StbItemResult]
    summary: StbSummary


def _failure_reason(episode: Episode, verdict: Verdict) -> str | None:
    if verdict.passed:
        return None
    if episode.end != End.ANSWER:
        return episode.end.value
    api_steps = episode.api_steps
    if api_steps and all(step.error for step in api_steps):
        return "tool_errors"
    return "judged_unsolved"


def score_episode(query: StbQuery, episode: Episode, judge: Judge) -> StbItemResult:
    """Judge one episode and make its result row."""
    started = time.perf_counter()
    verdict = judge.judge(JudgeInput.from_episode(query.query, episode, query.function_names))
    elapsed = time.perf_counter() - started
    output = episode.to_dict()
    output["judge"] = verdict.to_dict()
    output["judge_s"] = elapsed
    return StbItemResult(
        item_id=query.id,
        category=query.group,
        passed=verdict.passed,
        failure_reason=_failure_reason(episode, verdict),
        failing_role=None if verdict.passed else episode.failing_role,
        output=output,
        latency_s=episode.latency_s,
        judge_kind=verdict.kind,
        score=verdict.score,
    )


def summarize(items: Sequence[StbItemResult], *, group: str, mode: str, judge_kind: str) -> StbSummary:
    """Pass rate, SoPR, failures by reason and role, and latency of a group's results (one judge kind only)."""
    kinds = {item.judge_kind for item in items}
    if kinds - {judge_kind}:
        raise ValueError(
            f"judge_kind: results judged by {sorted(kinds)} cannot be summarised as {judge_kind!r}; "
            "never mix LLM-judged and rule-based results in one summary, run the group again with one judge"
        )
    latencies = sorted(item.latency_s for item in items)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
    queries = [float(item.output.get("queries", 0)) for item in items]
    return StbSummary(
        group=group,
        mode=mode,
        judge_kind=judge_kind,
        items=len(items),
        passed=sum(item.passed for item in items),
        pass_rate=sum(item.passed for item in items) / len(items) if items else 0.0,
        sopr=statistics.fmean(item.score for item in items) if items else 0.0,
        failures_by_reason=dict(Counter(item.failure_reason for item in items if item.failure_reason)),
        failures_by_role=dict(Counter(item.failing_role for item in items if item.failing_role)),
        mean_latency_s=statistics.fmean(latencies) if latencies else 0.0,
        p95_latency_s=p95,
        mean_queries=statistics.fmean(queries) if queries else 0.0,
    )


@contextmanager
def _api_caller(
    api: str | VirtualApiServer | ApiCaller | None,
    cache_dir: Path | None,
    simulator: Simulator | None,
    catalog: ApiCatalog,
) -> Iterator[ApiCaller]:
    """The caller of the virtual API server: the one given, a client of a URL, or a server started for the run."""
    if api is not None and (cache_dir is not None or simulator is not None):
        raise ValueError(
            "api: given together with cache_dir/simulator; either point at a running virtual API server "
            "(api='http://127.0.0.1:8080') or let the run start one (cache_dir=..., simulator=...), not both"
        )
    if isinstance(api, (str, VirtualApiServer)):
        with VirtualApiClient(api if isinstance(api, str) else api.url) as client:
            yield client
        return
    if api is not None:
        yield api
        return
    if cache_dir is None:
        raise ValueError(
            "api: not given and no cache_dir to start a virtual API server over; pass api='http://host:port' of a "
            "running server, or cache_dir=settings.cache_dir / 'stabletoolbench' (plus simulator= for cache misses)"
        )
    with (
        VirtualApiServer(cache_dir, catalog=catalog, simulator=simulator) as server,
        VirtualApiClient(server.url) as client,
    ):
        yield client


def run_group(
    target: ChatTarget,
    group: str,
    data_dir: Path,
    *,
    api: str | VirtualApiServer | ApiCaller | None = None,
    cache_dir: Path | None = None,
    simulator: Simulator | None = None,
    judge: Judge | None = None,
    mode: Mode = "cot",
    config: LoopConfig | None = None,
    max_items: int | None = None,
    item_ids: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> StbRunResult:
    """Run `target` on a solvable group (`G1_instruction` or `stabletoolbench/G1_instruction`) and judge it.

    The tools are answered by the virtual API server at `api` (a URL, a running `VirtualApiServer`, or any
    `ApiCaller`), or by one started for this run over `cache_dir` with `simulator` for cache misses. Without a
    `judge` the rule-based judge is used, and every result says so (`judge_kind`). `max_items` takes the first
    items, `item_ids` picks items by id; `workers` > 1 runs items in threads (for targets that are remote
    endpoints). Errors of the target or of the judge's endpoint propagate: the caller records the failed run.
    """
    group = check_group(group)
    if mode not in MODES:
        raise ValueError(f"mode: got {mode!r}, must be one of {', '.join(MODES)}; e.g. mode='dfsdt'")
    if workers < 1:
        raise ValueError(f"workers: got {workers}, must be ≥ 1; e.g. workers=4 for a remote endpoint")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items: got {max_items}, must be ≥ 1 or None (all items)")
    queries = load_group(group, data_dir)
    if item_ids is not None:
        wanted = [str(item_id) for item_id in item_ids]
        known = {query.id for query in queries}
        unknown = [item_id for item_id in wanted if item_id not in known]
        if unknown:
            raise ValueError(
                f"item_ids: {unknown[:5]} are not queries of {group}; e.g. {[query.id for query in queries[:3]]}"
            )
        chosen = set(wanted)
        queries = [query for query in queries if query.id in chosen]
    if max_items is not None:
        queries = queries[:max_items]
    judge = judge or RuleBasedJudge()
    config = config or LoopConfig()
    catalog = ApiCatalog.from_queries(queries)
    results: list[StbItemResult | None] = [None] * len(queries)
    done = 0

    with _api_caller(api, cache_dir, simulator, catalog) as caller:

        def _one(index: int) -> int:
            query = queries[index]
            episode = run_episode(target, query, caller, mode=mode, config=config)
            results[index] = score_episode(query, episode, judge)
            return index

        if workers == 1:
            for index in range(len(queries)):
                _one(index)
                done += 1
                if progress is not None:
                    progress(done, len(queries))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stb-item") as pool:
                for _ in pool.map(_one, range(len(queries))):
                    done += 1
                    if progress is not None:
                        progress(done, len(queries))
    items = [result for result in results if result is not None]
    return StbRunResult(items=items, summary=summarize(items, group=group, mode=mode, judge_kind=judge.kind))
