"""What every reader of a public tool-use format shares: finding the files, reading records with their position,
reporting a malformed record instead of stopping, and normalising tool schemas to JSON Schema.

A reader is a function `read_<format>(path, **options) -> Iterator[Trajectory | Malformed]`. It maps its format onto
the unified trajectory (`mor.data.schema`) with these conventions:

* `system` and `user` turns carry the format's system prompt and user messages as `content`.
* Every executor turn is preceded by a reasoner turn handing over to it (`Turn(role="reasoner", thought=...,
  next_role="executor")`), and the final answer by one handing over to the summarizer. A format without the
  reasoner's thought leaves `thought=None`; the role-completion stage fills it later.
* The executor turn holds the calls (`ToolCall(name, arguments, id="call_<n>")`, numbered over the trajectory), and
  each result is an `observation` turn with the matching `call_id`.
* The answer is a `summarizer` turn with `content`.
* `metadata.source` is the format's name, `metadata.origin` where the record came from (file and position), and
  `metadata.missing` the parts the format did not have (e.g. `["thought"]`), for the completion stage.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mor.data.schema import Tool

__all__ = [
    "DATA_SUFFIXES",
    "Malformed",
    "Record",
    "error_reason",
    "expand_paths",
    "iter_json_records",
    "normalise_parameters",
    "parse_tools",
    "record_id",
]

#: File suffixes a directory is searched for.
DATA_SUFFIXES: tuple[str, ...] = (".json", ".jsonl")


@dataclass(frozen=True)
class Malformed:
    """A record a reader could not use: where it is and why (the job counts and reports it, and goes on)."""

    source: str
    file: str
    position: str  # "line 12" (JSON lines), "index 3" (a JSON array), or "file" (one JSON object per file)
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.position}: {self.reason}"


Record = Any  # one raw JSON value of a format


def expand_paths(path: str | Path, suffixes: tuple[str, ...] = DATA_SUFFIXES) -> list[Path]:
    """The files `path` names: a file, a directory (searched recursively for `suffixes`) or a glob pattern.

    Raises `FileNotFoundError` naming the path when nothing matches.
    """
    text = str(path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return [candidate]
    if candidate.is_dir():
        found = sorted(p for p in candidate.rglob("*") if p.is_file() and p.suffix in suffixes)
    else:
        found = sorted(Path(p) for p in glob.glob(str(candidate), recursive=True) if Path(p).is_file())
    if not found:
        raise FileNotFoundError(
            f"path: {text!r} names no data file (a file, a directory holding {'/'.join(suffixes)} files, or a glob)"
        )
    return found


def iter_json_records(file: Path) -> Iterator[tuple[str, Record | ValueError]]:
    """`(position, record)` for every record of a JSON file (an array: each element; an object: the file itself)
    or a JSON-lines file (each line). A line or file that is not valid JSON yields a `ValueError` in its place."""
    if file.suffix == ".jsonl":
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"line {number}", json.loads(line)
                except json.JSONDecodeError as error:
                    yield f"line {number}", ValueError(f"not valid JSON: {error.msg} at column {error.colno}")
        return
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        yield "file", ValueError(f"not valid JSON: {error}")
        return
    if isinstance(document, list):
        for index, record in enumerate(document):
            yield f"index {index}", record
    else:
        yield "file", document


_TYPE_NAMES: Mapping[str, str] = {
    "str": "string",
    "string": "string",
    "text": "string",
    "char": "string",
    "date": "string",
    "enum": "string",
    "int": "integer",
    "integer": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "number": "number",
    "decimal": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "tuple": "array",
    "set": "array",
    "dict": "object",
    "object": "object",
    "map": "object",
    "null": "null",
    "none": "null",
    "any": "",
}


def _json_type(name: Any) -> dict[str, Any]:
    """A JSON-Schema fragment for a type written in any of the formats' styles (`str`, `List[int]`, `integer`,
    `Optional[str]`, `str, optional`)."""
    if not isinstance(name, str):
        return {}
    text = name.strip()
    lowered = text.lower().removesuffix(", optional").removesuffix(",optional").strip()
    if lowered.startswith("optional[") and lowered.endswith("]"):
        return _json_type(lowered[len("optional[") : -1])
    for prefix in ("list[", "array[", "tuple[", "set["):
        if lowered.startswith(prefix) and lowered.endswith("]"):
            items = _json_type(text[len(prefix) : -1])
            return {"type": "array", **({"items": items} if items else {})}
    if lowered.startswith("dict[") and lowered.endswith("]"):
        return {"type": "object"}
    mapped = _TYPE_NAMES.get(lowered)
    return {"type": mapped} if mapped else {}


def normalise_parameters(parameters: Any) -> dict[str, Any]:
    """A tool's parameters as a JSON-Schema object, from any of the formats' styles.

    Accepted: a JSON Schema (`{"type": "object", "properties": {...}, "required": [...]}`, types normalised, e.g.
    `dict` → `object`); xLAM's map of parameter name → `{"type": "str", "description": ..., "default": ...}` (a
    parameter without a default is required); a list of `{"name", "type", "description", "default"?, "required"?}`.
    Raises `ValueError` for anything else.
    """
    if parameters is None or parameters == {}:
        return {"type": "object", "properties": {}}
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except json.JSONDecodeError as error:
            raise ValueError(f"parameters: not valid JSON ({error.msg})") from None
    if isinstance(parameters, list):
        properties: dict[str, Any] = {}
        required: list[str] = []
        for entry in parameters:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise ValueError(f"parameters: a list entry {entry!r} has no name")
            properties[entry["name"]] = _property(entry)
            if entry.get("required", "default" not in entry):
                required.append(entry["name"])
        return {"type": "object", "properties": properties, **({"required": required} if required else {})}
    if not isinstance(parameters, Mapping):
        raise ValueError(f"parameters: got {type(parameters).__name__}, expected a JSON Schema object or a map")
    if _is_json_schema(parameters):
        properties = {name: _property(spec) for name, spec in dict(parameters.get("properties") or {}).items()}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        required = [name for name in parameters.get("required") or [] if name in properties]
        if required:
            schema["required"] = required
        return schema
    # xLAM style: parameter name -> {"type": ..., "description": ..., "default": ...}
    properties = {}
    required = []
    for name, spec in parameters.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"parameters.{name}: got {spec!r}, expected an object with a type")
        properties[str(name)] = _property(spec)
        if "default" not in spec and "optional" not in str(spec.get("type", "")).lower():
            required.append(str(name))
    return {"type": "object", "properties": properties, **({"required": required} if required else {})}


def _is_json_schema(parameters: Mapping[str, Any]) -> bool:
    """A JSON Schema object, not xLAM's name -> spec map (where a parameter may itself be named `properties`)."""
    if parameters.get("type") in ("object", "dict"):
        return True
    properties = parameters.get("properties")
    return isinstance(properties, Mapping) and not isinstance(properties.get("type"), str)


def _property(spec: Any) -> dict[str, Any]:
    """One parameter's JSON Schema (types normalised; description, enum, items, default kept)."""
    if not isinstance(spec, Mapping):
        return {}
    out: dict[str, Any] = {}
    kind = spec.get("type")
    if isinstance(kind, str):
        out.update(_json_type(kind))
    elif isinstance(kind, list):
        out["type"] = [_json_type(k).get("type", k) for k in kind]
    for key in ("description", "enum", "default", "format", "minimum", "maximum"):
        if key in spec:
            out[key] = spec[key]
    if isinstance(spec.get("items"), Mapping):
        out["items"] = _property(spec["items"])
    if isinstance(spec.get("properties"), Mapping):
        out["properties"] = {name: _property(sub) for name, sub in spec["properties"].items()}
        if isinstance(spec.get("required"), list):
            out["required"] = [name for name in spec["required"] if name in out["properties"]]
    return out


def parse_tools(
    value: Any, *, where: str = "tools", parameters: Callable[[Any], dict[str, Any]] | None = None
) -> list[Tool]:
    """Tools from a list (or a JSON string of a list) of functions, bare (`{"name", "description", "parameters"}`)
    or OpenAI entries (`{"type": "function", "function": {...}}`); parameters normalised to JSON Schema by
    `parameters` (default `normalise_parameters`)."""
    normalise = parameters or normalise_parameters
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{where}: got {type(value).__name__}, expected a list of functions")
    tools = []
    for index, entry in enumerate(value):
        function = (
            entry["function"] if isinstance(entry, Mapping) and isinstance(entry.get("function"), Mapping) else entry
        )
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}[{index}]: expected an object with a name, got {str(entry)[:80]!r}")
        description = function.get("description") or ""
        if not isinstance(description, str):
            kind = type(description).__name__
            raise ValueError(f"{where}[{index}] ({name}).description: expected a string, got {kind}")
        try:
            schema = normalise(function.get("parameters"))
        except ValueError as error:
            raise ValueError(f"{where}[{index}] ({name}).{error}") from None
        tools.append(Tool(name=name, description=description, parameters=schema))
    return tools


def error_reason(error: BaseException) -> str:
    """A reader's failure as one line for a `Malformed` report (a pydantic error: each field path and message)."""
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    if isinstance(error, ValidationError):
        return "not a valid trajectory: " + "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'record'}: {problem['msg']}"
            for problem in error.errors()
        )
    return str(error)


def record_id(source: str, file: Path, position: str) -> str:
    """`<source>-<file stem>-<index or line>` (`<source>-<file stem>` for a file holding one record)."""
    return f"{source}-{file.stem}" if position == "file" else f"{source}-{file.stem}-{position.rsplit(' ', 1)[-1]}"
