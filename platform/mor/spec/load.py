"""Loading job specs from YAML with errors that name the file, the field path, the value and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mor.spec.job import DataJobSpec, TrainJobSpec, job_spec_adapter

__all__ = ["SpecError", "load_spec", "parse_spec"]

_KIND_HINT = "e.g. kind: train"


class SpecError(ValueError):
    """A job spec that cannot run; `problems` lists every problem found, each naming file and field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def load_spec(path: str | Path) -> TrainJobSpec | DataJobSpec:
    """Read and validate a YAML job spec file; raises SpecError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), ["no such file; give the path of a YAML job spec, e.g. jobs/quickstart.yaml"])
    text = path.read_text(encoding="utf-8")
    return parse_spec(text, source=str(path), spec_dir=path.resolve().parent)


def parse_spec(text: str, *, source: str = "<spec>", spec_dir: Path | None = None) -> TrainJobSpec | DataJobSpec:
    """Validate YAML text as a job spec; relative paths resolve against `spec_dir`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(source, [f"{where}YAML syntax error: {problem}"]) from None
    if not isinstance(data, dict):
        raise SpecError(source, [f"got {type(data).__name__}, a job spec is a YAML mapping; start with {_KIND_HINT}"])
    if "kind" not in data:
        raise SpecError(source, [f"kind: missing; must be one of train, data; {_KIND_HINT}"])
    try:
        return job_spec_adapter().validate_python(data, context={"spec_dir": spec_dir})
    except ValidationError as error:
        raise SpecError(source, _describe(error, data)) from None


def _describe(error: ValidationError, data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        # The discriminated union puts the kind first; it is not a field of the file.
        if loc and loc[0] in ("train", "data") and data.get("kind") == loc[0]:
            loc = loc[1:]
        # Unions of base-model forms report each alternative; keep the user's own key.
        # A tagged union adds its tag (builtin/path/hub) to the path: base_model.path.path → base_model.path,
        # base_model.hub.dtype → base_model.dtype.
        if len(loc) >= 3 and loc[0] == "base_model" and loc[1] in ("builtin", "path", "hub"):
            loc = [loc[0], *loc[2:]]
        # Data sources are tagged by their format, which is also their one key: sources.0.xlam.xlam → sources.0.xlam.
        if len(loc) >= 5 and loc[:2] == ["data", "sources"] and loc[3] == loc[4]:
            loc = [*loc[:3], *loc[4:]]
        if item["type"] == "union_tag_invalid":
            loc = ["kind"]
        field = ".".join(loc) or "(top level)"
        message = _message(item, data, loc)
        line = f"{field}: {message}"
        if line not in problems:
            problems.append(line)
    return problems


def _value_at(data: Any, loc: list[str]) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _message(item: dict[str, Any], data: dict[str, Any], loc: list[str]) -> str:
    kind = item["type"]
    value = _value_at(data, loc)
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}; check the spelling against the field reference (jobs/README.md)"
    if kind == "missing":
        return "missing; this field is required"
    if kind == "union_tag_invalid":
        return f"got {data.get('kind')!r}; must be one of train, data; {_KIND_HINT}"
    if kind == "base_model_form":
        return f"got {value!r}; {item['msg']}"
    text = item["msg"]
    if text.startswith("Value error, "):
        return text.removeprefix("Value error, ")
    return f"got {value!r}: {text[0].lower()}{text[1:]}"
