"""Reader of the APIGen / xLAM function-calling format (Salesforce/xlam-function-calling-60k on Hugging Face).

A record (the files are a JSON array of them, or JSON lines); `tools` and `answers` are JSON *strings*::

    {"id": 7,
     "query": "Where is IP 8.8.8.8, and what is 5 factorial?",
     "tools": "[{\\"name\\": \\"get_ip_location\\", \\"description\\": \\"...\\",
                 \\"parameters\\": {\\"ip\\": {\\"description\\": \\"...\\", \\"type\\": \\"str\\"},
                                \\"fields\\": {\\"description\\": \\"...\\", \\"type\\": \\"List[str], optional\\",
                                             \\"default\\": \\"\\"}}}, ...]",
     "answers": "[{\\"name\\": \\"get_ip_location\\", \\"arguments\\": {\\"ip\\": \\"8.8.8.8\\"}},
                  {\\"name\\": \\"factorial\\", \\"arguments\\": {\\"n\\": 5}}]"}

Mapping onto the unified trajectory (conventions in `mor.data.readers.base`): `query` → a `user` turn; a reasoner
turn handing over to the executor (no thought: xLAM has none); one executor turn holding every answer as a call
(several answers are parallel calls), `call_1`, `call_2`, ... xLAM has no results and no final answer, so
`metadata.missing` is `["thought", "observation", "answer"]`.

Parameters are in xLAM's own form (name → `{"type": "List[int], optional", "description", "default"}`); types are
read from Python typing spellings into JSON Schema (`List[int]` → array of integer, `Dict[str, Any]` → object,
`Union[int, float]` → integer|number, `Optional[X]`/`X, optional` → not required, `Callable`/`Any` → no type), and a
string default is converted to the declared type (`"2"` → 2; the empty default xLAM writes for an optional
non-string parameter is dropped).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mor.data.readers.base import (
    Malformed,
    error_reason,
    expand_paths,
    iter_json_records,
    normalise_parameters,
    parse_tools,
    record_id,
)
from mor.data.schema import ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["MISSING", "SOURCE", "read_xlam", "xlam_parameters"]

SOURCE = "xlam"

MISSING: tuple[str, ...] = ("thought", "observation", "answer")
"""What no xLAM record has, for the completion stage."""


def read_xlam(path: str | Path) -> Iterator[Trajectory | Malformed]:
    """Every record of the xLAM files at `path` (a file, a directory or a glob) as a trajectory, or a `Malformed`
    report naming the record and the reason."""
    for file in expand_paths(path):
        for position, record in iter_json_records(file):
            if isinstance(record, ValueError):
                yield Malformed(SOURCE, str(file), position, str(record))
                continue
            try:
                yield _trajectory(record, file, position)
            except (ValueError, RecursionError) as error:
                yield Malformed(SOURCE, str(file), position, error_reason(error))
            except (TypeError, KeyError, AttributeError) as error:  # a shape no check foresaw: report, go on
                reason = f"unexpected record shape: {type(error).__name__}: {error}"
                yield Malformed(SOURCE, str(file), position, reason)


def _trajectory(record: Any, file: Path, position: str) -> Trajectory:
    if not isinstance(record, dict):
        raise ValueError(f"expected an object with 'query', 'tools' and 'answers', got {type(record).__name__}")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query: missing, empty or not a string")
    tools = parse_tools(_json_list(record, "tools"), parameters=xlam_parameters)
    answers = _json_list(record, "answers")
    if not answers:
        raise ValueError("answers: an empty list; an xLAM record without calls has nothing to learn")
    calls = [_call(answer, index) for index, answer in enumerate(answers)]
    return Trajectory(
        id=_record_id(record.get("id"), file, position),
        tools=tools,
        turns=[
            Turn(role="user", content=query),
            Turn(role="reasoner", next_role="executor"),
            Turn(role="executor", calls=calls),
        ],
        metadata=TrajectoryMeta(source=SOURCE, origin=f"{file}:{position}", missing=list(MISSING)),
    )


def _json_list(record: dict[str, Any], key: str) -> list[Any]:
    """A field holding a list, as xLAM's JSON string or (in re-exported copies) the list itself."""
    value = record.get(key)
    if value is None:
        raise ValueError(f"{key}: missing")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{key}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a JSON list, got {type(value).__name__}")
    return value


def _call(answer: Any, index: int) -> ToolCall:
    name = answer.get("name") if isinstance(answer, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"answers[{index}]: expected {{'name': ..., 'arguments': {{...}}}}, got {str(answer)[:80]!r}")
    arguments = answer.get("arguments")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"answers[{index}] ({name}).arguments: not valid JSON ({error.msg})") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"answers[{index}] ({name}).arguments: expected an object, got {type(arguments).__name__}")
    return ToolCall(name=name, arguments=arguments, id=f"call_{index + 1}")


def _record_id(value: Any, file: Path, position: str) -> str:
    """`xlam-<record id>`, else `xlam-<file stem>-<index or line>`."""
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
        return f"{SOURCE}-{value}"
    return record_id(SOURCE, file, position)


# -- parameters -------------------------------------------------------------------------------------------------------


def xlam_parameters(parameters: Any) -> dict[str, Any]:
    """A tool's parameters as a JSON-Schema object, from xLAM's map of name → `{"type", "description", "default"}`
    (any other form goes to `normalise_parameters` as it is). Raises `ValueError`."""
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except json.JSONDecodeError as error:
            raise ValueError(f"parameters: not valid JSON ({error.msg})") from None
    is_map = (
        isinstance(parameters, Mapping)
        and bool(parameters)
        and all(isinstance(spec, Mapping) for spec in parameters.values())
        and set(parameters) != {"properties"}  # a bare JSON Schema {"properties": {...}}
    )
    if not is_map:
        return normalise_parameters(parameters)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in parameters.items():
        # One parameter at a time, so a parameter named "properties" or "type" reads as a parameter.
        single = normalise_parameters({"p": spec})
        schema = dict(single["properties"]["p"])
        is_required = "p" in single.get("required", [])
        kind = spec.get("type")
        if isinstance(kind, str):
            typed, optional = _type_schema(kind)
            if "items" in schema and "items" not in typed and isinstance(spec.get("items"), Mapping):
                typed["items"] = schema["items"]  # an explicit items schema the type spelling does not give
            schema = {**typed, **{key: value for key, value in schema.items() if key not in ("type", "items")}}
            is_required = is_required and not optional
        _coerce_default(schema)
        properties[str(name)] = schema
        if is_required:
            required.append(str(name))
    return {"type": "object", "properties": properties, **({"required": required} if required else {})}


_SCALARS: dict[str, str] = {
    **dict.fromkeys(("str", "string", "text", "char", "bytes", "date", "datetime", "time", "url", "path"), "string"),
    **dict.fromkeys(("int", "integer", "long"), "integer"),
    **dict.fromkeys(("float", "double", "number", "decimal", "numeric"), "number"),
    **dict.fromkeys(("bool", "boolean"), "boolean"),
    **dict.fromkeys(("list", "array", "tuple", "set", "frozenset", "sequence", "iterable"), "array"),
    **dict.fromkeys(("dict", "object", "map", "mapping"), "object"),
    **dict.fromkeys(("none", "nonetype", "null"), "null"),
}
_ARRAYS = frozenset(("list", "array", "tuple", "set", "frozenset", "sequence", "iterable"))
_OBJECTS = frozenset(("dict", "map", "mapping", "object"))
_GENERIC = re.compile(r"([A-Za-z_][\w.]*)\s*\[(.*)\]", re.S)


def _type_schema(text: str) -> tuple[dict[str, Any], bool]:
    """(JSON-Schema fragment, whether the spelling says optional) for an xLAM type: `str`, `List[int]`,
    `Dict[str, Any]`, `Union[int, float]`, `Optional[str]`, `float, optional`, `int, default=5`, `str (optional)`,
    `int or float`, `int | None`. An unknown or unconstrained type (`Any`, `Callable`) gives `{}`."""
    head, *modifiers = _split_top(text, ",")
    optional = any(m.strip().lower().startswith(("optional", "default")) for m in modifiers)
    head = head.strip()
    marked = re.fullmatch(r"(.*?)\s*\(\s*optional\s*\)", head, re.I | re.S)
    if marked:
        head, optional = marked.group(1), True
    if head.lower().startswith("optional "):
        head, optional = head[len("optional ") :], True
    schema, nullable = _parse_type(head, depth=0)
    return schema, optional or nullable


def _parse_type(text: str, depth: int) -> tuple[dict[str, Any], bool]:
    """(schema, nullable) of one type expression."""
    text = text.strip()
    if depth > 16 or not text:
        return {}, False
    alternatives = _split_top(re.sub(r"\s+or\s+", "|", text), "|")
    if len(alternatives) > 1:
        return _union([_parse_type(a, depth + 1) for a in alternatives])
    generic = _GENERIC.fullmatch(text)
    if generic:
        base = generic.group(1).rsplit(".", 1)[-1].lower()
        args = [a.strip() for a in _split_top(generic.group(2), ",") if a.strip()]
        if base == "optional":
            return (_parse_type(args[0], depth + 1)[0] if args else {}), True
        if base == "union":
            return _union([_parse_type(a, depth + 1) for a in args])
        if base == "literal":
            return _literal(args), False
        if base in _ARRAYS:
            parts = [_parse_type(a, depth + 1)[0] for a in args if a != "..."]
            items = parts[0] if parts and all(p == parts[0] for p in parts) else {}
            return {"type": "array", **({"items": items} if items else {})}, False
        if base in _OBJECTS:
            return {"type": "object"}, False
        return _scalar(base)
    return _scalar(text.rsplit(".", 1)[-1].lower())


def _scalar(name: str) -> tuple[dict[str, Any], bool]:
    kind = _SCALARS.get(name)
    return ({"type": kind} if kind else {}), kind == "null"


def _union(parts: list[tuple[dict[str, Any], bool]]) -> tuple[dict[str, Any], bool]:
    """`Union[...]`: the alternatives' types (null dropped: it makes the parameter optional); unconstrained when one
    alternative is."""
    nullable = any(n for _, n in parts)
    types: list[str] = []
    first: dict[str, Any] = {}
    for schema, _ in parts:
        kind = schema.get("type")
        if kind == "null":
            continue
        if not kind:
            return {}, nullable
        for k in kind if isinstance(kind, list) else [kind]:
            if k not in types:
                types.append(k)
        first = first or schema
    if not types:
        return {"type": "null"}, True
    return (first if len(types) == 1 else {"type": types}), nullable


def _literal(args: list[str]) -> dict[str, Any]:
    """`Literal['a', 'b']` → an enum of those values, typed when they share a JSON type."""
    try:
        values = [ast.literal_eval(a) for a in args]
    except (ValueError, SyntaxError):
        return {}
    kinds = {_SCALARS.get(type(v).__name__.lower(), "") for v in values}
    kind = kinds.pop() if len(kinds) == 1 else ""
    return {**({"type": kind} if kind else {}), "enum": values}


def _split_top(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _coerce_default(schema: dict[str, Any]) -> None:
    """A string default in the declared type (`"2"` → 2, `"true"` → True, `"[1, 2]"` → [1, 2]); xLAM's empty
    default of a non-string parameter (meaning "none") is dropped. A default that does not convert is kept."""
    default, kind = schema.get("default"), schema.get("type")
    if not isinstance(default, str) or not isinstance(kind, str) or kind == "string":
        return
    text = default.strip()
    if not text:
        del schema["default"]
    elif kind == "integer" and _INTEGER.fullmatch(text):
        schema["default"] = int(text)
    elif kind == "number" and _DECIMAL.fullmatch(text):
        schema["default"] = int(text) if _INTEGER.fullmatch(text) else float(text)
    elif kind == "boolean" and text.lower() in ("true", "false"):
        schema["default"] = text.lower() == "true"
    elif kind in ("array", "object"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return
        if isinstance(value, list if kind == "array" else dict):
            schema["default"] = value
