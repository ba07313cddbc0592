"""An item's ground truth written as a model output, to check the checker and to time scoring.

Each parameter takes its first acceptable value other than `""` (or, with `omit_optional`, is left out when
`""` says it may be). Dict ground truths hold per-key lists of acceptable values and are resolved the same
way, recursively. Java and JavaScript values are written as the source text a model would give: Java
literals (`5L`, `2.0f`, `new int[]{1, 2}`, `new ArrayList<>(Arrays.asList("a"))`, double-brace HashMaps) and
JavaScript literals (`"text"`, `[1, 2]`, `{"key": "value"}`).
"""

from __future__ import annotations

from typing import Any

from mor.evals.bfcl.data import BfclItem, Language
from mor.evals.bfcl.parse import Call

__all__ = ["reference_output"]

_OMIT = object()
_JAVA_ELEMENT_TYPES = {
    "String": "String",
    "char": "char",
    "integer": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "byte": "byte",
    "short": "short",
    "any": "Object",
}


def reference_output(item: BfclItem, *, omit_optional: bool = False) -> list[Call]:
    """The ground truth of an AST item as a list of calls a model could have produced."""
    if item.ground_truth is None:
        raise ValueError(f"item {item.id}: category {item.category} has no ground truth to write out")
    functions = {function["name"]: function for function in item.functions}
    calls: list[Call] = []
    for expected in item.ground_truth:
        ((name, acceptable),) = expected.items()
        declared = functions.get(name, item.functions[0])["parameters"]["properties"]
        arguments: dict[str, Any] = {}
        for param, values in acceptable.items():
            value = _choose(values, omit_optional)
            if value is _OMIT:
                continue
            arguments[param] = _render(value, declared.get(param, {}), item.language)
        calls.append({name: arguments})
    return calls


def _choose(values: Any, omit_optional: bool) -> Any:
    if not isinstance(values, list):
        return _resolve(values, omit_optional)
    if omit_optional and "" in values:
        return _OMIT
    for value in values:
        if value != "":
            return _resolve(value, omit_optional)
    return _OMIT


def _resolve(value: Any, omit_optional: bool) -> Any:
    """Dicts in a ground truth map keys to acceptable values: pick one per key, at any depth."""
    if isinstance(value, dict):
        picked = {key: _choose(options, omit_optional) for key, options in value.items()}
        return {key: choice for key, choice in picked.items() if choice is not _OMIT}
    if isinstance(value, list):
        return [_resolve(element, omit_optional) if isinstance(element, dict) else element for element in value]
    return value


def _render(value: Any, spec: dict[str, Any], language: Language) -> Any:
    if language is Language.PYTHON:
        return value
    declared = spec.get("type", "any")
    items = spec.get("items", {}).get("type", "any")
    if language is Language.JAVA:
        return _java(value, declared, items)
    return _javascript(value, declared)


# ---------------------------------------------------------------- Java


def _java(value: Any, declared: str, items: str) -> str:
    if isinstance(value, str):
        return value  # a String/any/char value, or a variable name given for another type
    if declared == "long":
        return f"{value}L"
    if declared == "float":
        return f"{value}f"
    if declared == "double":
        return repr(float(value))
    if declared == "Array" and isinstance(value, list):
        element_type = _JAVA_ELEMENT_TYPES.get(items, "Object")
        return f"new {element_type}[]{{{', '.join(_java_element(e, items) for e in value)}}}"
    if declared == "ArrayList" and isinstance(value, list):
        if not value:
            return "new ArrayList<>()"
        return f"new ArrayList<>(Arrays.asList({', '.join(_java_element(e, items) for e in value)}))"
    if declared == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{key}", {_java_literal(item)});' for key, item in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return _java_literal(value)


def _java_element(value: Any, items: str) -> str:
    if items == "char" and isinstance(value, str):
        return f"'{value}'"
    if items == "long" and isinstance(value, int):
        return f"{value}L"
    if items == "float" and isinstance(value, (int, float)):
        return f"{value}f"
    return _java_literal(value)


def _java_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"Arrays.asList({', '.join(_java_literal(e) for e in value)})"
    return str(value)


# ---------------------------------------------------------------- JavaScript


def _javascript(value: Any, declared: str) -> str:
    if isinstance(value, str):
        return f'"{value}"' if declared == "String" else value  # any/variables are written bare
    if declared == "Bigint" and isinstance(value, int):
        return f"{value}n"
    return _js_literal(value)


def _js_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        text = repr(value)
        return text if "e" not in text else f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"[{', '.join(_js_literal(e) for e in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{key}": {_js_literal(item)}' for key, item in value.items()) + "}"
    return str(value)
