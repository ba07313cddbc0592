"""Checks of what manifests carry as strings or commands: a Ray Serve config (serveConfigV2), a Ray runtime
environment (runtimeEnvYAML), a mor job spec, and command lines of mor, mlflow and services/evaluation/run.sh.

Each check returns problems as `field.path: message` lines (empty when fine). Ray and mor are imported inside the
functions: test modules must not import Ray when they are collected.
"""

from __future__ import annotations

import shlex
import tempfile
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

__all__ = ["cli_problems", "runtime_env_problems", "serve_config_problems", "spec_problems", "unknown_keys"]

#: runtime_env keys that install something when a job or replica starts: the images bake dependencies in instead.
_INSTALLING = ("pip", "uv", "conda", "container", "image_uri", "java_jars", "py_executable")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists and dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in typing.get_args(annotation):
        found.extend(_models_in(argument))
    return found


def unknown_keys(data: Any, model: type[BaseModel], path: str = "") -> list[str]:
    """Keys of `data` that `model` (recursively, through nested models) has no field for: Ray's own schemas ignore
    unknown keys, so `num_replica:` would silently do nothing."""
    if not isinstance(data, Mapping):
        return []
    fields = model.model_fields
    names = {name: info for name, info in fields.items()}
    names.update({info.alias: info for info in fields.values() if info.alias})
    extra = model.model_config.get("extra")
    problems = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        info = names.get(key)
        if info is None:
            if extra != "allow":
                problems.append(f"{where}: unknown field {key!r} of {model.__name__}")
            continue
        models = _models_in(info.annotation)
        if not models:
            continue
        origin = typing.get_origin(info.annotation)
        items: list[tuple[str, Any]]
        if isinstance(value, list):
            items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
        elif (
            isinstance(value, Mapping)
            and origin in (dict, Mapping)
            or (
                isinstance(value, Mapping)
                and any(typing.get_origin(a) is dict for a in typing.get_args(info.annotation))
            )
        ):
            items = [(f"{where}.{k}", v) for k, v in value.items()]
        else:
            items = [(where, value)]
        for item_path, item in items:
            problems.extend(unknown_keys(item, models[0], item_path))
    return problems


def _validation_lines(error: Exception, prefix: str) -> list[str]:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        lines = []
        for item in error.errors(include_url=False):
            loc = ".".join(str(part) for part in item["loc"])
            lines.append(f"{prefix}{'.' if prefix and loc else ''}{loc}: {item['msg']}")
        return lines
    return [f"{prefix}: {error}"]


def runtime_env_problems(env: Any, path: str = "runtimeEnvYAML") -> list[str]:
    """A Ray runtime environment: only Ray's known fields, valid types, and nothing that installs packages."""
    from ray.runtime_env import RuntimeEnv

    if not isinstance(env, Mapping):
        return [f"{path}: got {type(env).__name__}, a runtime environment is a mapping"]
    known = {name for name in RuntimeEnv.known_fields if not name.startswith("_")}
    problems = [f"{path}.{key}: unknown runtime_env field {key!r}" for key in env if key not in known]
    problems += [
        f"{path}.{key}: installs at job start; dependencies are baked into the image"
        for key in env
        if key in _INSTALLING
    ]
    if not problems:
        try:
            RuntimeEnv(**dict(env))
        except (TypeError, ValueError) as error:
            problems.append(f"{path}: {error}")
    return problems


def serve_config_problems(text: str, path: str = "serveConfigV2") -> list[str]:
    """A Ray Serve config (what `serve deploy` takes): Ray's ServeDeploySchema with unknown keys refused, the
    runtime environments of applications and deployments, and mor applications' `args` against ServeArgs."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    from mor.serve import ServeArgs

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [f"{path}: YAML syntax error: {error}"]
    problems = [f"{path}.{line}" for line in unknown_keys(data, ServeDeploySchema)]
    try:
        ServeDeploySchema.model_validate(data)
    except ValidationError as error:
        problems += _validation_lines(error, path)
    for number, app in enumerate((data or {}).get("applications") or []):
        where = f"{path}.applications[{number}]"
        if "runtime_env" in app:
            problems += runtime_env_problems(app["runtime_env"], f"{where}.runtime_env")
        for index, deployment in enumerate(app.get("deployments") or []):
            options = deployment.get("ray_actor_options") or {}
            if "runtime_env" in options:
                problems += runtime_env_problems(
                    options["runtime_env"], f"{where}.deployments[{index}].ray_actor_options.runtime_env"
                )
        if app.get("import_path") == "mor.serve.deployment:app_builder":
            try:
                ServeArgs.model_validate(app.get("args") or {})
            except ValidationError as error:
                problems += _validation_lines(error, f"{where}.args")
    return problems


def spec_problems(text: str, source: str, data_mounts: Mapping[str, Path] | None = None) -> list[str]:
    """A mor job spec as mor validates it (mor.spec.parse_spec). Data paths are checked to lie under one of
    `data_mounts` (mount path in the pod -> a stand-in directory here) and validated there."""
    from mor.spec import SpecError, parse_spec

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [f"{source}: YAML syntax error: {error}"]
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        sources = ((data or {}).get("data") or {}).get("sources") or [] if isinstance(data, dict) else []
        for number, entry in enumerate(sources):
            for form, params in entry.items() if isinstance(entry, dict) else []:
                if not isinstance(params, dict) or "path" not in params or data_mounts is None:
                    continue
                path = str(params["path"])
                mount = next((m for m in data_mounts if path == m or path.startswith(m.rstrip("/") + "/")), None)
                if mount is None:
                    problems.append(
                        f"{source}: data.sources.{number}.{form}.path: got {path!r}, which is on no volume of the "
                        f"pod that runs the job (mounted: {sorted(data_mounts)})"
                    )
                    continue
                local = Path(scratch) / Path(path).relative_to("/")
                local.mkdir(parents=True, exist_ok=True)
                params["path"] = str(local)
        try:
            parse_spec(yaml.safe_dump(data), source=source)
        except SpecError as error:
            problems += str(error).splitlines()
    return problems


def cli_problems(command: list[str], program: str, path: str) -> list[str]:
    """Parse `command` (argv without the program name) with the command-line interface of `program` (mor, or
    `mlflow server`), as the program would, without running it: unknown options and bad values are problems."""
    import typer

    root: Any
    if program == "mor":
        from mor.cli.main import app

        root = typer.main.get_command(app)
    elif program == "mlflow server":
        from mlflow.cli import server

        root = server
    else:
        raise ValueError(f"unknown program {program!r}")
    name, args, current = program, list(command), root
    # Typer vendors its own copy of click: recognise groups and errors by what they offer, not by their class.
    try:
        while True:
            context = current.make_context(name, list(args), resilient_parsing=False)
            if not hasattr(current, "resolve_command"):
                return []
            rest = [*context._protected_args, *context.args]
            if not rest:
                return [f"{path}: {shlex.join([program, *command])}: no sub-command"]
            name, current, args = current.resolve_command(context, rest)
            name = f"{program} {name}"
    except Exception as error:  # click's UsageError / BadParameter (either copy); Exit for --help
        if type(error).__name__ == "Exit":
            return []
        if not hasattr(error, "format_message"):
            raise
        return [f"{path}: {shlex.join([program, *command])}: {error.format_message()}"]
