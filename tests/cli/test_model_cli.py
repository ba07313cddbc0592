"""`mor model list | show | promote` through the Typer app, on a real MLflow SQLite store and a real results
database: the path a user takes — train (a version with alias candidate) → evaluate → promote → serve champion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mor.cli.main import app
from mor.registry import JOB_ID_TAG, STATUS_TAG, BaseModelRef, TrackingSession, register_agent, tracking_client
from mor.settings import Settings
from mor.store import create_run, finish_run, get_or_create_model, make_engine, session_scope, start_run, upgrade
from mor_testing import settings_for

MODEL = "mor-agent"


def _parts(root: Path) -> tuple[dict[str, Path], Path]:
    """Adapter directories per role and a tokenizer directory: small real files (a hub base needs no weights)."""
    adapters = {}
    for role in ("reasoner", "executor", "summarizer"):
        adapters[role] = root / "adapters" / role
        adapters[role].mkdir(parents=True)
        (adapters[role] / "adapter.safetensors").write_bytes(role.encode() * 8)
    tokenizer = root / "tokenizer"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text('{"model": {"vocab": {}}}')
    return adapters, tokenizer


def _train(settings: Settings, root: Path, *, job_id: str, accuracy: float, loss: float) -> str:
    """What a train job leaves behind: a run with spec params, metrics, its data set and its evaluation summary,
    and a registered version with alias candidate; returns the version."""
    adapters, tokenizer = _parts(root)
    with TrackingSession.start(settings, experiment="quickstart", run_name=job_id, tags={JOB_ID_TAG: job_id}) as run:
        run.log_spec({"kind": "train", "name": "quickstart", "train": {"lr": 0.002, "epochs": 3}})
        for step, value in enumerate((loss * 3, loss * 2, loss), start=1):
            run.log_metrics({"loss": value}, step=step)
        run.log_dataset_input(
            name="quickstart-data", digest="abc123", source=str(root / "data"), profile={"train": 900, "test": 100}
        )
        run.log_summary({"accuracy": accuracy, "items": 100, "call_accuracy": accuracy + 0.1}, prefix="eval/synthetic")
        run.log_summary({"accuracy": 0.0, "items": 100}, prefix="eval/synthetic/untrained")
        registered = register_agent(
            run,
            model_name=MODEL,
            base=BaseModelRef("hub", "org/base-model"),
            adapters=adapters,
            tokenizer=tokenizer,
            spec_text="kind: train\nname: quickstart\n",
            alias="candidate",
            tags={JOB_ID_TAG: job_id},
        )
    return registered.version


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A MOR_HOME whose registry holds two trained versions of mor-agent (candidate → 2) and whose results
    database holds one `mor eval run` of version 2."""
    home = tmp_path_factory.mktemp("model-home")
    settings = settings_for(home)
    versions = [
        _train(settings, home / "v1", job_id="mor-quickstart-0000aaaa", accuracy=0.30, loss=1.2),
        _train(settings, home / "v2", job_id="mor-quickstart-1111bbbb", accuracy=0.35, loss=0.9),
    ]
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with session_scope(engine) as session:
        model = get_or_create_model(session=session, uri=f"models:/{MODEL}@candidate", name=MODEL, version="2")
        run = create_run(
            session=session,
            suite="bfcl",
            categories=["simple_python"],
            model_uri=f"models:/{MODEL}@candidate",
            triggered_by="user:tester",
            model=model,
        )
        start_run(session=session, run_id=run.id, model=model)
        finish_run(session=session, run_id=run.id, status="succeeded", summary={"accuracy": 0.45, "items": 20.0})
    engine.dispose()
    yield home, versions


@pytest.fixture
def home(trained: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOR_HOME", str(trained[0]))
    monkeypatch.setenv("COLUMNS", "250")
    for key in ("MLFLOW_TRACKING_URI", "MOR_DATABASE_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    return trained[0]


def _mor(*args: str) -> Result:
    return CliRunner().invoke(app, ["model", *args])


def _flat(result: Result) -> str:
    return " ".join(result.output.split())


def test_list_shows_models_with_aliases_and_versions(home: Path, trained: tuple[Path, list[str]]) -> None:
    assert trained[1] == ["1", "2"]
    listed = _mor("list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(MODEL))
    assert row.split()[:3] == [MODEL, "2", "2"] and "@candidate → 2" in row
    [entry] = json.loads(_mor("list", "--json").output)
    assert (entry["name"], entry["versions"], entry["latest_version"]) == (MODEL, 2, "2")
    assert entry["aliases"]["candidate"] == "2"

    versions = _mor("list", MODEL)
    assert versions.exit_code == 0, versions.output
    rows = [line.split() for line in versions.output.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["2", "1"]  # newest first
    assert rows[0][1:3] == ["@candidate", "ready"] and "mor-quickstart-1111bbbb" in rows[0]
    data = json.loads(_mor("list", MODEL, "--json").output)
    assert [(v["version"], v["aliases"], v["status"]) for v in data] == [
        ("2", ["candidate"], "ready"),
        ("1", [], "ready"),
    ]
    unknown = _mor("list", "no-such-model")
    assert unknown.exit_code == 1 and "'no-such-model' is not a registered model" in _flat(unknown)


def test_show_has_params_metrics_evaluations_and_data(home: Path) -> None:
    shown = _mor("show", f"{MODEL}@candidate")
    assert shown.exit_code == 0, shown.output
    text = _flat(shown)
    assert f"models:/{MODEL}/2" in text and f"aliases models:/{MODEL}@candidate" in text and "status ready" in text
    assert "job mor-quickstart-1111bbbb" in text and "in experiment quickstart" in text
    assert "training job synthetic 0.350 100 call_accuracy 0.450" in text
    assert "training job synthetic/untrained 0.000 100" in text
    assert "bfcl/simple_python 0.450 20" in text and f"models:/{MODEL}@candidate" in text  # a `mor eval run` of it
    assert "quickstart-data abc123 training 900 100" in text
    assert "loss 0.9" in text and "train.lr 0.002" in text

    data = json.loads(_mor("show", f"{MODEL}/1", "--json").output)
    assert data["version"]["version"] == "1" and data["version"]["aliases"] == []
    assert data["evals"]["synthetic"]["accuracy"] == pytest.approx(0.30)
    assert data["metrics"]["loss"] == pytest.approx(1.2)
    assert data["params"]["train.epochs"] == "3"
    assert data["datasets"][0]["profile"] == {"train": 900, "test": 100}
    assert data["evaluation_runs"] == []  # the eval run was of version 2
    newest = json.loads(_mor("show", MODEL, "--json").output)
    assert newest["version"]["version"] == "2" and len(newest["evaluation_runs"]) == 1


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        (f"{MODEL}@champion", 1, "'mor-agent' has no alias 'champion' (its aliases: @candidate → 2); set it with"),
        (f"{MODEL}/7", 1, "'mor-agent' has no version 7 (its versions: 1, 2)"),
        (f"{MODEL}/abc", 2, "must be NAME, NAME@ALIAS or NAME/VERSION"),
    ],
)
def test_show_explains_a_bad_reference(home: Path, ref: str, code: int, message: str) -> None:
    result = _mor("show", ref)
    assert result.exit_code == code and message in _flat(result), result.output


def test_promote_moves_the_alias_along_the_users_path(home: Path) -> None:
    from mor.registry import resolve_model

    settings = Settings()
    first = _mor("promote", MODEL, "1", "--alias", "champion")
    assert first.exit_code == 0, first.output
    text = _flat(first)
    assert f"models:/{MODEL}@champion → version 1 (the alias is new)" in text
    assert "no evaluation of version 1" in text and f"mor serve models:/{MODEL}@champion" in text

    second = _mor("promote", MODEL, "2")  # --alias champion is the default
    assert f"models:/{MODEL}@champion → version 2 (moved from version 1)" in _flat(second)
    assert "no evaluation" not in _flat(second)  # version 2 was evaluated
    client = tracking_client(settings)
    assert {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()} == {
        "candidate": "2",
        "champion": "2",
    }
    assert client.get_model_version(MODEL, "1").aliases == []  # the alias moved; it names one version
    assert resolve_model(f"models:/{MODEL}@champion", settings).version == "2"  # what `mor serve` loads
    again = json.loads(_mor("promote", MODEL, "2", "--json").output)
    assert again == {
        "name": MODEL,
        "alias": "champion",
        "version": "2",
        "previous": "2",
        "uri": f"models:/{MODEL}@champion",
    }
    assert "already names version 2; nothing changed" in _flat(_mor("promote", MODEL, "2"))


def test_promote_refuses_what_cannot_be_served(home: Path) -> None:
    missing = _mor("promote", MODEL, "9")
    assert missing.exit_code == 1 and "has no version 9 (its versions: 1, 2)" in _flat(missing)
    bad_alias = _mor("promote", MODEL, "1", "--alias", "latest")
    assert bad_alias.exit_code == 2 and "alias: got 'latest'" in _flat(bad_alias)
    not_a_number = _mor("promote", MODEL, "v1")
    assert not_a_number.exit_code == 2 and "VERSION: got 'v1', must be a version number" in _flat(not_a_number)
    client = tracking_client(Settings())
    pending = client.create_model_version(MODEL, "file:///nowhere", tags={STATUS_TAG: "pending"})
    refused = _mor("promote", MODEL, str(pending.version), "--alias", "staging")
    assert refused.exit_code == 1 and "its registration did not complete" in _flat(refused)
    assert "staging" not in client.get_registered_model(MODEL).aliases
    client.delete_model_version(MODEL, str(pending.version))
