"""`mor eval run | schedule … | results | compare | serve` through the Typer app, on real databases (and the
session's Ray cluster for the commands that submit jobs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from mor.cli.main import app
from mor.cluster import ClusterInfo
from mor.data import DEFAULT_ROLES
from mor.evals.record import record_result, row_metrics, synthetic_rows
from mor.evals.targets import write_untrained_agent
from mor.scheduler.service import RayEvalSubmitter
from mor.settings import Settings
from mor.store import (
    NewItemResult,
    add_item_results,
    create_run,
    create_schedule,
    finish_run,
    get_or_create_model,
    get_run,
    get_schedule,
    item_results,
    list_runs,
    list_schedules,
    make_engine,
    score_history,
    session_scope,
    start_run,
    upgrade,
    utcnow,
)
from mor_testing import benchmarks_dir as _benchmarks_dir
from mor_testing import synthetic_result

UTC = UTC
TINY_MOR = {
    "rank": 2,
    "target_modules": ["q_proj", "v_proj"],
    "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    """A fresh MOR_HOME whose results database is `database_url` (SQLite and PostgreSQL)."""
    monkeypatch.setenv("MOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOR_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "MOR_BENCHMARKS_DIR"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "home"


@pytest.fixture
def db(home: Path, database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _mor(*args: str) -> Result:
    return CliRunner().invoke(app, ["eval", *args])


def _flat(result: Result) -> str:
    return " ".join(result.output.split())


def test_schedule_add_list_pause_resume_remove(db: Engine) -> None:
    added = _mor(
        "schedule",
        "add",
        "bfcl-nightly",
        "--cron",
        "0 2 * * *",
        "--suite",
        "bfcl",
        "--category",
        "simple_python",
        "--category",
        "multiple",
        "--model",
        "models:/mor-agent@champion",
        "--max-items",
        "20",
        "--max-retries",
        "2",
        "--catch-up",
        "skip",
        "--timezone",
        "Europe/Paris",
    )
    assert added.exit_code == 0, added.output
    assert "Schedule bfcl-nightly added (next fire " in _flat(added)
    with session_scope(db) as session:
        schedule = get_schedule(session=session, name="bfcl-nightly")
    assert (schedule.cron, schedule.suite, schedule.categories, schedule.model_uri) == (
        "0 2 * * *",
        "bfcl",
        ["simple_python", "multiple"],
        "models:/mor-agent@champion",
    )
    assert (schedule.timezone, schedule.catch_up, schedule.max_retries, schedule.config) == (
        "Europe/Paris",
        "skip",
        2,
        {"max_items": 20},
    )
    assert schedule.next_fire_at is not None and schedule.next_fire_at.hour in (0, 1)  # 02:00 Paris in UTC
    assert schedule.created_by is not None and schedule.created_by.startswith("user:")

    listed = _mor("schedule", "list")
    assert listed.exit_code == 0 and "bfcl-nightly" in listed.output and "active" in listed.output
    assert _mor("schedule", "pause", "bfcl-nightly").exit_code == 0
    [entry] = json.loads(_mor("schedule", "list", "--json").output)
    assert (entry["name"], entry["paused"]) == ("bfcl-nightly", True)
    assert entry["categories"] == ["simple_python", "multiple"]
    resumed = _mor("schedule", "resume", "bfcl-nightly")
    assert resumed.exit_code == 0 and "resumed: next fire" in _flat(resumed)
    with session_scope(db) as session:
        assert not get_schedule(session=session, name="bfcl-nightly").paused

    duplicate = _mor("schedule", "add", "bfcl-nightly", "--cron", "@daily", "--suite", "bfcl", "--model", "models:/x@y")
    assert duplicate.exit_code == 1 and "schedule 'bfcl-nightly' already exists" in _flat(duplicate)
    removed = _mor("schedule", "remove", "bfcl-nightly")
    assert removed.exit_code == 0 and "removed" in removed.output
    with session_scope(db) as session:
        assert list_schedules(session=session) == []
    missing = _mor("schedule", "pause", "bfcl-nightly")
    assert missing.exit_code == 1 and "schedule 'bfcl-nightly' not found" in _flat(missing)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 2 * *", "--suite", "bfcl", "--model", "models:/a@b"], "cron: got '0 2 * *', has 4 fields"),
        (
            ["--cron", "@daily", "--suite", "bfcl/simple", "--model", "models:/a@b"],
            "the v4 name of python 'simple' is simple_python",
        ),
        (
            ["--cron", "@daily", "--suite", "bfcl", "--model", "models:/a@b", "--catch-up", "always"],
            "'always' is not one of 'skip', 'run_once', 'run_all'",
        ),
        (
            ["--cron", "@daily", "--suite", "bfcl", "--model", "./no-such-agent"],
            "--model: got './no-such-agent', neither a models:/ or runs:/ URI",
        ),
        (
            ["--cron", "@daily", "--suite", "bfcl", "--model", "models:/a@b", "--max-items", "0"],
            "max_items: got 0, must be a whole number >= 1",
        ),
    ],
)
def test_schedule_add_refuses_bad_values(db: Engine, args: list[str], message: str) -> None:
    result = _mor("schedule", "add", "bad", *args)
    assert result.exit_code == 2, result.output
    assert message in _flat(result)
    with session_scope(db) as session:
        assert list_schedules(session=session) == []


def _finished_run(
    db: Engine,
    when: datetime,
    model: str,
    verdicts: dict[tuple[str, str], bool],
    roles: dict[tuple[str, str], str] | None = None,
) -> int:
    """A succeeded bfcl run finished at `when`, with one item row per verdict."""
    roles = roles or {}
    categories = sorted({category for category, _ in verdicts})
    with session_scope(db) as session:
        run = create_run(
            session=session,
            suite="bfcl",
            categories=categories,
            model_uri=model,
            triggered_by="schedule:bfcl-nightly",
            now=when,
        )
        start_run(session=session, run_id=run.id, now=when)
        add_item_results(
            session=session,
            run_id=run.id,
            results=[
                NewItemResult(
                    category,
                    item,
                    passed,
                    None if passed else "wrong_value",
                    None if passed else roles.get((category, item), "executor"),
                )
                for (category, item), passed in verdicts.items()
            ],
        )
        passed = sum(verdicts.values())
        failures: dict[str, float] = {}
        for key, ok in verdicts.items():
            if not ok:
                role = roles.get(key, "executor")
                failures[f"failures/{role}"] = failures.get(f"failures/{role}", 0.0) + 1
        finish_run(
            session=session,
            run_id=run.id,
            status="succeeded",
            now=when + timedelta(minutes=5),
            summary={"accuracy": passed / len(verdicts), "items": float(len(verdicts)), **failures},
        )
        return run.id


def _history(db: Engine) -> list[int]:
    start = datetime(2025, 6, 1, 2, tzinfo=UTC)
    runs = []
    for day, (python_ok, multiple_ok) in enumerate([(1, 0), (2, 1), (2, 2), (3, 2)]):
        verdicts = {("simple_python", f"simple_python_{i}"): i < python_ok for i in range(4)}
        verdicts |= {("multiple", f"multiple_{i}"): i < multiple_ok for i in range(2)}
        runs.append(_finished_run(db, start + timedelta(days=day), "models:/mor-agent@champion", verdicts))
    return runs


def test_results_table_and_plot(db: Engine, tmp_path: Path) -> None:
    runs = _history(db)
    table = _mor("results", "--suite", "bfcl")
    assert table.exit_code == 0, table.output
    lines = [line for line in table.output.splitlines() if "schedule:bfcl-nightly" in line]
    assert [line.split()[0] for line in lines] == [str(run) for run in reversed(runs)]
    assert "0.833" in lines[0] and "2025-06-04 02:05:00" in lines[0] and "executor 1" in lines[0]
    assert "│" not in table.output and "…" not in table.output  # piped: plain text, whole values

    plot = tmp_path / "plots" / "bfcl.png"
    drawn = _mor("results", "--suite", "bfcl", "--plot", str(plot), "--since", "2025-06-02")
    assert drawn.exit_code == 0, drawn.output
    assert f"Wrote {plot} (2 category series and 1 overall" in _flat(drawn)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    shown = [line.split()[0] for line in drawn.output.splitlines() if "schedule:bfcl-nightly" in line]
    assert str(runs[0]) not in shown and len(shown) == 3

    one = json.loads(_mor("results", "--suite", "bfcl/multiple", "--json", "--limit", "2").output)
    assert [entry["id"] for entry in one] == [runs[3], runs[2]]
    assert one[0]["summary"]["accuracy"] == pytest.approx(5 / 6)
    nothing = json.loads(_mor("results", "--model", "models:/other@champion", "--json").output)
    assert nothing == []
    bad = _mor("results", "--since", "last tuesday")
    assert bad.exit_code == 2 and "--since: got 'last tuesday'" in _flat(bad)


def test_results_show_failures_by_role_of_training_job_runs(db: Engine) -> None:
    """A run recorded as a training job's eval stage records it, and one stored with the dotted names training
    jobs wrote before (`failures.<role>`, `accuracy.<category>`), both show their failures by role."""
    when = datetime(2025, 6, 1, 2, tzinfo=UTC)
    with session_scope(db) as session:
        old = create_run(
            session=session,
            suite="synthetic",
            categories=["all"],
            model_uri="models:/agent/1",
            triggered_by="job:old-quickstart",
            now=when,
        )
        start_run(session=session, run_id=old.id, now=when)
        finish_run(
            session=session,
            run_id=old.id,
            status="succeeded",
            now=when,
            summary={
                "accuracy": 0.25,
                "call_accuracy": 0.5,
                "accuracy.math": 0.5,
                "failures.executor": 2.0,
                "failures.summarizer": 1.0,
            },
        )
        new = create_run(
            session=session,
            suite="synthetic",
            categories=["all"],
            model_uri="models:/agent/2",
            triggered_by="job:quickstart",
            now=when + timedelta(days=1),
        )
        start_run(session=session, run_id=new.id)
        old_id, new_id = old.id, new.id
    rows, metrics = synthetic_rows(synthetic_result())
    record_result(db, new_id, rows=rows, metrics=metrics)

    table = _mor("results", "--suite", "synthetic")
    assert table.exit_code == 0, table.output
    shown = {line.split()[0]: line for line in table.output.splitlines() if "job:" in line}
    assert "reasoner 1, executor 2" in shown[str(new_id)] and "0.250" in shown[str(new_id)]
    assert "executor 2, summarizer 1" in shown[str(old_id)]
    data = {entry["id"]: entry["summary"] for entry in json.loads(_mor("results", "--json").output)}
    assert data[old_id] == {
        "accuracy": 0.25,
        "call_accuracy": 0.5,
        "accuracy/math": 0.5,
        "failures/executor": 2.0,
        "failures/summarizer": 1.0,
    }
    assert data[new_id]["failures/executor"] == 2.0 and data[new_id]["items"] == 4.0


def test_compare_shows_deltas_and_flipped_items(db: Engine) -> None:
    a = _finished_run(
        db,
        datetime(2025, 6, 1, 2, tzinfo=UTC),
        "models:/mor-agent@champion",
        {
            ("simple_python", "simple_python_0"): True,
            ("simple_python", "simple_python_1"): False,
            ("multiple", "multiple_0"): True,
        },
        roles={("simple_python", "simple_python_1"): "reasoner"},
    )
    b = _finished_run(
        db,
        datetime(2025, 6, 2, 2, tzinfo=UTC),
        "models:/mor-agent@champion",
        {
            ("simple_python", "simple_python_0"): True,
            ("simple_python", "simple_python_1"): True,
            ("multiple", "multiple_0"): False,
        },
    )
    shown = _mor("compare", str(a), str(b))
    assert shown.exit_code == 0, shown.output
    text = _flat(shown)
    assert "simple_python 0.500 (1/2) 1.000 (2/2) +0.500" in text
    assert "multiple 1.000 (1/1) 0.000 (0/1) -1.000" in text
    assert "flipped items: 1 fixed, 1 broken" in text
    assert "simple_python simple_python_1 fail → pass wrong_value (reasoner)" in text
    assert "multiple multiple_0 pass → fail wrong_value (executor)" in text
    assert "different items" not in text
    data = json.loads(_mor("compare", str(a), str(b), "--json").output)
    assert (data["fixed"], data["broken"]) == (1, 1)
    assert {c["category"]: c["delta"] for c in data["categories"]} == {"multiple": -1.0, "simple_python": 0.5}
    missing = _mor("compare", str(a), "999")
    assert missing.exit_code == 1 and "run 999 not found" in _flat(missing)


def test_run_refuses_bad_input_before_touching_anything(home: Path) -> None:
    result = _mor("run", "bfcl/simple", "--model", "models:/mor-agent@champion")
    assert result.exit_code == 2 and "the v4 name of python 'simple' is simple_python" in _flat(result)
    result = _mor("run", "bfcl/simple_python", "--model", "models:/a@b", "--data-dir", str(home / "nowhere"))
    assert result.exit_code == 2 and "is not a directory" in _flat(result)
    assert not home.exists(), "no Ray, MLflow or SQL state was created"


# ---------------------------------------------------------------- evaluation views


def _stored_run(db: Engine, rows: list[NewItemResult], *, model: str = "models:/mor-agent@candidate") -> int:
    """A succeeded synthetic run with `rows`, recorded as every caller records one."""
    with session_scope(db) as session:
        run = create_run(
            session=session, suite="synthetic", categories=["all"], model_uri=model, triggered_by="user:tester"
        )
        start_run(session=session, run_id=run.id)
        run_id = run.id
    record_result(db, run_id, rows=rows, metrics=row_metrics(rows, reasons=False))
    return run_id


def test_show_lists_a_runs_items_with_their_reasons(db: Engine) -> None:
    rows, metrics = synthetic_rows(synthetic_result())
    run_id = _stored_run(db, rows)

    shown = _mor("show", str(run_id))
    assert shown.exit_code == 0, shown.output
    text = _flat(shown)
    assert f"Run {run_id}: synthetic/all of models:/mor-agent@candidate, succeeded" in text
    assert "items: 4 of 4" in text and "t0 pass" in text
    assert "weather t2 fail executor made no call" in text
    assert 'math t1 fail executor called add({"a": 2}), expected add({"a": 1})' in text

    failed = _mor("show", str(run_id), "--failed")
    assert failed.exit_code == 0 and "items that failed: 3 of 3" in _flat(failed) and " t0 " not in _flat(failed)
    executor = _flat(_mor("show", str(run_id), "--role", "executor"))
    assert "items that failed on role executor: 2 of 2" in executor and "t3" not in executor
    reasoner = _mor("show", str(run_id), "--role", "reasoner", "--json")
    data = json.loads(reasoner.output)
    assert data["run"]["id"] == run_id and data["matching"] == 1
    assert [(item["item_id"], item["failing_role"], item["failure_reason"]) for item in data["items"]] == [
        ("t3", "reasoner", "picked summarizer as the next role, expected executor")
    ]
    limited = _flat(_mor("show", str(run_id), "--limit", "1"))
    assert "items: 1 of 4" in limited and "and 3 more" in limited
    missing = _mor("show", "999")
    assert missing.exit_code == 1 and "run 999 not found" in _flat(missing)


def test_compare_warns_on_different_items_and_can_keep_the_shared_ones(db: Engine) -> None:
    when = datetime(2025, 6, 1, 2, tzinfo=UTC)
    full = _finished_run(db, when, "models:/mor-agent/1", {("multiple", f"multiple_{i}"): i < 2 for i in range(10)})
    smoke = _finished_run(
        db, when + timedelta(days=1), "models:/mor-agent/2", {("multiple", f"multiple_{i}"): True for i in range(2)}
    )
    compared = _flat(_mor("compare", str(full), str(smoke)))
    assert f"Warning: the runs have different items — 2 shared, 8 only in run {full}, 0 only in run {smoke}" in compared
    assert "Pass --shared-only" in compared
    assert "multiple 0.200 (2/10) 1.000 (2/2) +0.800" in compared
    assert "No item changed its verdict." in compared

    shared = _flat(_mor("compare", str(full), str(smoke), "--shared-only"))
    assert "the accuracies below are over the shared items only" in shared
    assert f"run {full} → run {smoke}, over the 2 shared items" in shared
    assert "multiple 1.000 (2/2) 1.000 (2/2) +0.000" in shared
    data = json.loads(_mor("compare", str(full), str(smoke), "--json").output.split("\nWarning")[0])
    assert (data["shared_items"], data["only_in_a"], data["only_in_b"], data["shared_only"]) == (2, 8, 0, False)


def test_the_plot_has_an_overall_line_and_a_sane_axis_for_one_point(db: Engine) -> None:
    from matplotlib import dates

    from mor.cli.eval_results import _figure

    runs = _history(db)
    with session_scope(db) as session:
        points = score_history(session=session, suite="bfcl")
    figure, categories, overall = _figure({"bfcl": points})
    assert (categories, overall) == (["bfcl/multiple", "bfcl/simple_python"], ["bfcl overall"])
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines["bfcl overall"].get_ydata()) == pytest.approx([100 / 6, 50.0, 400 / 6, 500 / 6])

    one = [point for point in points if point.run_id == runs[0]]
    figure, _, _ = _figure({"bfcl": one})
    low, high = figure.axes[0].get_xlim()
    assert high - low == pytest.approx(2.0)  # a day either side of the one run, in matplotlib's day units
    assert dates.num2date(low) < one[0].finished_at.replace(tzinfo=UTC) < dates.num2date(high)


def _results_file(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_score_reports_missing_results_and_prints_a_summary(home: Path, tmp_path: Path) -> None:
    from mor.evals.bfcl import load_items, reference_output

    data = _benchmarks_dir()
    items = load_items("simple_python", data)
    rows: list[dict[str, object]] = [{"id": item.id, "result": reference_output(item)} for item in items[:8]]
    rows += [{"id": items[8].id, "result": "not a call"}, {"id": items[9].id, "result": [{"wrong_name": {}}]}]
    path = _results_file(tmp_path, rows)
    missing = len(items) - 10

    scored = _mor("score", "bfcl/simple_python", "--results", str(path), "--data-dir", str(data))
    assert scored.exit_code == 0, scored.output
    text = _flat(scored)
    assert f"bfcl/simple_python: accuracy {8 / len(items):.2%} (8/{len(items)})" in text
    assert f"{missing} of {len(items)} items have no result in {path} and count as failures" in text
    assert "on the 10 items it answers, the accuracy is 80.00% (8/10)" in text
    assert f"Missing: {items[10].id}, " in text and f"and {missing - 5} more" in text
    assert f"unparseable 1 {items[8].id}" in text and f"wrong_function 1 {items[9].id}" in text
    assert "missing_result" not in text and len(scored.output.splitlines()) < 12  # a summary, not 400 rows

    listed = _mor("score", "bfcl/simple_python", "--results", str(path), "--data-dir", str(data), "--items")
    lines = [line for line in listed.output.splitlines() if line.startswith(("simple_python_",))]
    assert len(lines) == 10 and lines[0].split()[:2] == [items[0].id, "pass"]

    as_json = json.loads(
        _mor("score", "bfcl/simple_python", "--results", str(path), "--data-dir", str(data), "--json").output
    )
    assert (as_json["answered"], as_json["missing"], as_json["total"]) == (10, missing, len(items))
    assert as_json["answered_accuracy"] == pytest.approx(0.8)


# ---------------------------------------------------------------- through Ray


@pytest.fixture
def ray_home(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The session cluster's MOR_HOME (so the commands find that cluster), with results and MLflow in tmp."""
    settings = ray_settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'results.db'}",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        }
    )
    monkeypatch.setenv("MOR_HOME", str(settings.home))
    monkeypatch.setenv("MOR_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("COLUMNS", "250")
    for key in ("RAY_ADDRESS", "MOR_BENCHMARKS_DIR"):
        monkeypatch.delenv(key, raising=False)
    return settings


@pytest.mark.slow
def test_run_evaluates_once_as_a_ray_job(ray_home: Settings, tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    write_untrained_agent(agent, texts=texts, cache_dir=tmp_path / "cache", mor_config=TINY_MOR)
    result = _mor(
        "run",
        "bfcl/simple_python",
        "--model",
        str(agent),
        "--max-items",
        "2",
        "--max-new-tokens",
        "4",
        "--data-dir",
        str(_benchmarks_dir()),
    )
    assert result.exit_code == 0, result.output
    text = _flat(result)
    assert "Submitted run 1 (bfcl/simple_python of " in text and "as job mor-eval-run1-" in text
    assert "run 1: bfcl/simple_python — succeeded" in text and "failures by role: reasoner 2" in text
    engine = make_engine(ray_home.db_url)
    try:
        with session_scope(engine) as session:
            run = get_run(session=session, run_id=1)
            rows = item_results(session=session, run_id=1)
        assert (run.status, run.triggered_by.startswith("user:"), run.config) == (
            "succeeded",
            True,
            {"max_items": 2, "max_new_tokens": 4, "data_dir": str(_benchmarks_dir().resolve())},
        )
        assert [(row.item_id, row.passed, row.failing_role) for row in rows] == [
            ("simple_python_0", False, "reasoner"),
            ("simple_python_1", False, "reasoner"),
        ]
        assert RayEvalSubmitter(ray_home).client.info(run.ray_job_id).metadata["mor.kind"] == "eval"
    finally:
        engine.dispose()


@pytest.mark.slow
def test_serve_once_fires_what_is_due(ray_home: Settings, tmp_path: Path) -> None:
    upgrade(ray_home.db_url)
    engine = make_engine(ray_home.db_url)
    try:
        with session_scope(engine) as session:  # due a minute ago; its model is missing, so the run fails fast
            create_schedule(
                session=session,
                name="due",
                cron="* * * * *",
                suite="bfcl",
                categories=["simple_python"],
                model_uri=str(tmp_path / "missing"),
                config={"max_items": 1},
                now=utcnow() - timedelta(minutes=1, seconds=5),
            )
        result = _mor("serve", "--once", "--data-dir", str(_benchmarks_dir()))
        assert result.exit_code == 0, result.output
        assert "Evaluation scheduler on sqlite:///" in _flat(result) and "stopped." in result.output
        with session_scope(engine) as session:
            [run] = list_runs(session=session)
        assert run.triggered_by == "schedule:due" and run.ray_job_id is not None
        info = RayEvalSubmitter(ray_home).client.wait(run.ray_job_id, timeout_s=180)
        assert info.status == "FAILED"
        with session_scope(engine) as session:
            failed = get_run(session=session, run_id=run.id)
        assert failed.status == "failed" and "RegistryError" in (failed.error or "")
    finally:
        engine.dispose()
    bad = _mor("serve", "--poll", "0")
    assert bad.exit_code == 2 and "--poll: got 0.0, must be > 0" in _flat(bad)


# ---------------------------------------------------------------- comparing registered models


def _model_run(db: Engine, name: str, version: str | None, accuracy: float, *, uri: str | None = None) -> int:
    """A succeeded synthetic run of model `name` at `version` (no MLflow behind it) with `accuracy` over 10 items."""
    with session_scope(db) as session:
        model = get_or_create_model(session=session, uri=uri or f"models:/{name}/{version}", name=name, version=version)
        run = create_run(
            session=session,
            suite="synthetic",
            categories=["all"],
            model_uri=model.uri,
            triggered_by="user:tester",
            model=model,
        )
        start_run(session=session, run_id=run.id)
        finish_run(
            session=session,
            run_id=run.id,
            status="succeeded",
            summary={"accuracy": accuracy, "items": 10.0, "accuracy/weather": accuracy, "failures/executor": 3.0},
        )
        return run.id


def test_compare_models_gives_one_row_per_model_over_its_versions(db: Engine, tmp_path: Path) -> None:
    for version, accuracy in (("1", 0.3), ("2", 0.34), ("3", 0.32)):
        _model_run(db, "abl-mor", version, accuracy)
    for version, accuracy in (("1", 0.5), ("2", 0.52), ("3", 0.48)):
        _model_run(db, "abl-lora", version, accuracy)
    _model_run(db, "abl-lora", "1", 0.1)  # an older evaluation of version 1 would be replaced by a newer one …
    _model_run(db, "abl-lora", "1", 0.5)  # … so the newest (0.5) counts
    _model_run(db, "untrained tiny-llama", None, 0.0, uri="untrained:builtin:tiny-llama")
    shown = _mor("compare", "-m", "abl-mor", "-m", "abl-lora", "--plot", str(tmp_path / "variants.png"))
    assert shown.exit_code == 0, shown.output
    text = _flat(shown)
    assert "abl-mor 3 (?,?,?) — — 0.320 ± 0.020" in text and "reference" in text
    assert "abl-lora 3 (?,?,?) — — 0.500 ± 0.020" in text and "+0.180 (beyond spread)" in text
    assert "untrained tiny-llama 1 — — 0.000" in text and "-0.320 (n < 2)" in text
    assert "synthetic: accuracy per category" in text and "abl-lora 0.50 ± 0.02" in text
    assert (tmp_path / "variants.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads(_mor("compare", "-m", "abl-mor", "-m", "abl-lora", "--reference", "abl-lora", "--json").output)
    by_name = {row["variant"]: row for row in data}
    assert by_name["abl-mor"]["delta"] == pytest.approx(-0.18) and by_name["abl-lora"]["delta"] is None
    assert by_name["abl-lora"]["scores"]["accuracy"]["n"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "abl-mor", "-m", "abl-nothing"], "no succeeded synthetic evaluation of abl-nothing"),
        (["-m", "abl-mor", "-m", "abl-mor"], "compare at least two different models"),
        (["-m", "abl-mor", "-m", "abl-x", "--reference", "other"], "--reference 'other' is not one of"),
        (["1", "-m", "abl-mor", "-m", "abl-x"], "give run ids or --model names, not both"),
        (["1"], "give two run ids"),
        (["-m", "abl-mor", "-m", "abl-x", "--suite", "bfcl"], "no succeeded bfcl evaluation of a registered version"),
    ],
)
def test_compare_models_refuses_bad_input(db: Engine, args: list[str], message: str) -> None:
    _model_run(db, "abl-mor", "1", 0.3)
    _model_run(db, "abl-x", "1", 0.3)
    result = _mor("compare", *args)
    assert result.exit_code in (1, 2) and message in _flat(result), result.output


def test_compare_models_can_leave_out_models_without_runs(db: Engine, home: Path) -> None:
    """The ablation report's case: the variants of jobs/ablation/ that have not run yet are left out, not fatal."""
    from mor.evals.ablation import compare_models

    _model_run(db, "abl-mor", "1", 0.3)
    _model_run(db, "abl-x", "1", 0.4)
    settings = Settings()
    models = ["abl-later", "abl-mor", "abl-x"]
    summaries = compare_models(db, settings, suite="synthetic", models=models, reference="abl-later", missing_ok=True)
    by_name = {summary.variant: summary for summary in summaries}
    assert "abl-later" not in by_name and by_name["abl-x"].delta == pytest.approx(0.1), "first present = reference"
