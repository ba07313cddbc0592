"""The eval job, run in this process: a queued run row in, item rows, a finished run and an MLflow run out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from mor.data import DEFAULT_ROLES
from mor.evals.targets import write_untrained_agent
from mor.pipeline.eval_job import EVAL_SUMMARY_MARKER, EXPERIMENT, main, run_eval_job
from mor.settings import Settings
from mor.store import create_run, get_run, item_results, make_engine, session_scope, upgrade
from mor_testing import benchmarks_dir as _benchmarks_dir

TINY_MOR = {
    "rank": 2,
    "target_modules": ["q_proj", "v_proj"],
    "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
}


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent")
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    write_untrained_agent(root / "agent", texts=texts, cache_dir=root / "cache", mor_config=TINY_MOR)
    return root / "agent"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (creating its schema takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, tracking_uri: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=tracking_uri,
        database_url=database_url,
        ray_address=None,
        benchmarks_dir=None,
    )


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for the tests whose subject is not the database."""
    url = f"sqlite:///{tmp_path / 'results.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_engine: Engine, tracking_uri: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=tracking_uri,
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
        ray_address=None,
        benchmarks_dir=None,
    )


def _queued_run(engine: Engine, model_uri: str, **config: object) -> int:
    with session_scope(engine) as session:
        return create_run(
            session=session,
            suite="bfcl",
            categories=["simple_python", "irrelevance"],
            model_uri=model_uri,
            triggered_by="user:test",
            config=config,
        ).id


def test_a_queued_run_is_evaluated_and_recorded(engine: Engine, settings: Settings, agent_dir: Path) -> None:
    run_id = _queued_run(engine, str(agent_dir), max_items=2, max_new_tokens=4, data_dir=str(_benchmarks_dir()))
    summary = run_eval_job(run_id, settings, job_id="mor-eval-test-1")
    assert (summary.status, summary.items, summary.categories) == ("succeeded", 4, ["simple_python", "irrelevance"])

    with session_scope(engine) as session:
        run = get_run(session=session, run_id=run_id)
        rows = item_results(session=session, run_id=run_id)
    assert run.status == "succeeded" and run.ray_job_id == "mor-eval-test-1" and run.error is None
    assert run.started_at is not None and run.finished_at is not None and run.judge_kind is None
    assert run.model is not None and (run.model.uri, run.model.name, run.model.base_model) == (
        str(agent_dir),
        "agent",
        "builtin:tiny-llama",
    )
    # The untrained agent never finishes a reasoner turn: every AST item fails on the reasoner, and with no call
    # made the irrelevance items pass.
    assert [(row.category, row.item_id, row.passed, row.failing_role) for row in rows] == [
        ("irrelevance", "irrelevance_0", True, None),
        ("irrelevance", "irrelevance_1", True, None),
        ("simple_python", "simple_python_0", False, "reasoner"),
        ("simple_python", "simple_python_1", False, "reasoner"),
    ]
    assert all(row.suite == "bfcl" and row.latency_ms is not None for row in rows)
    assert run.summary is not None and run.summary["accuracy"] == 0.5
    assert run.summary["accuracy/simple_python"] == 0.0 and run.summary["failures/reasoner"] == 2.0

    client = MlflowClient(settings.tracking_uri)
    mlflow_run = client.get_run(run.mlflow_run_id)
    assert client.get_experiment(mlflow_run.info.experiment_id).name == EXPERIMENT
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.info.run_name == f"bfcl#{run_id}"
    tags = mlflow_run.data.tags
    assert (tags["mor.suite"], tags["mor.model"], tags["mor.eval_run_id"], tags["mor.job_id"]) == (
        "bfcl",
        str(agent_dir),
        str(run_id),
        "mor-eval-test-1",
    )
    assert mlflow_run.data.metrics["eval/bfcl/accuracy"] == 0.5
    assert mlflow_run.data.metrics["eval/bfcl/accuracy/irrelevance"] == 1.0
    assert mlflow_run.data.params["max_items"] == "2"


def test_a_failing_run_is_recorded_with_its_error(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    run_id = _queued_run(engine, str(tmp_path / "no-agent"), max_items=1)
    with pytest.raises(Exception, match="is neither a models:/ or runs:/ URI nor an existing directory"):
        run_eval_job(run_id, settings, job_id="mor-eval-test-2")
    with session_scope(engine) as session:
        run = get_run(session=session, run_id=run_id)
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("RegistryError: model: ") and "Traceback" in run.error
    assert run.finished_at is not None


def test_only_a_queued_run_is_started(sqlite_engine: Engine, sqlite_settings: Settings, agent_dir: Path) -> None:
    engine, settings = sqlite_engine, sqlite_settings
    run_id = _queued_run(engine, str(agent_dir), max_items=1, max_new_tokens=4, data_dir=str(_benchmarks_dir()))
    run_eval_job(run_id, settings)
    with pytest.raises(RuntimeError, match=f"run {run_id}: status is 'succeeded', an eval job only starts a queued"):
        run_eval_job(run_id, settings)
    with session_scope(engine) as session:
        assert get_run(session=session, run_id=run_id).status == "succeeded"  # untouched


def test_main_prints_the_summary_or_exits_1(
    sqlite_engine: Engine,
    sqlite_settings: Settings,
    agent_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, settings = sqlite_engine, sqlite_settings
    monkeypatch.setenv("MOR_HOME", str(settings.home))
    monkeypatch.setenv("MOR_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("MOR_BENCHMARKS_DIR", str(_benchmarks_dir()))  # the job's own setting, no data_dir option
    good = _queued_run(engine, str(agent_dir), max_items=1, max_new_tokens=4)
    assert main(["--run-id", str(good), "--job-id", "j-1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(EVAL_SUMMARY_MARKER + " ")
    summary = json.loads(line.removeprefix(EVAL_SUMMARY_MARKER + " "))
    assert (summary["run_id"], summary["status"], summary["items"]) == (good, "succeeded", 2)
    bad = _queued_run(engine, "models:/no-such-agent@champion")
    assert main(["--run-id", str(bad)]) == 1
    assert f"eval run {bad} failed: RegistryError" in capsys.readouterr().err
