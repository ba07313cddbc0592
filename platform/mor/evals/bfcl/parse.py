"""Turn a model's result (a list of calls, or a raw string) into calls `[{name: {arg: value}}]`.

Two shapes come in, as in BFCL result files:
- a list of calls, each `{"func_name": {"arg": value}}` or, as function-calling models store them,
  `{"func_name": "<JSON arguments>"}`; OpenAI tool-call dicts (`{"name", "arguments"}`, optionally under
  `"function"`) are accepted too;
- a raw string in the prompting format `[func(a=1, b="x"), other(c=[1, 2])]`, decoded as the published
  decoder does: Python syntax for python categories, a Java or JavaScript call expression for those.

Anything else raises `ParseError`; scoring reports it as an unparseable output.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from typing import Any

from mor.evals.bfcl.data import Language

__all__ = ["Call", "ParseError", "has_call", "parse_output"]

Call = dict[str, dict[str, Any]]


class ParseError(ValueError):
    """The output holds no decodable list of calls."""


def parse_output(output: object, language: Language = Language.PYTHON) -> list[Call]:
    """Decode a model result into a list of calls `{name: {arg: value}}`; raise ParseError if it cannot."""
    if isinstance(output, str):
        calls = _parse_text(output, language)
    elif isinstance(output, list):
        calls = [_call_from_object(item, index) for index, item in enumerate(output)]
    else:
        raise ParseError(f"result: expected a list of calls or a string, got {type(output).__name__}")
    _check_format(calls)
    return calls


def has_call(output: object) -> bool:
    """Whether an output holds at least one call, as the irrelevance/relevance rules decide it.

    The output is decoded as Python whatever the category. A decoding failure, `[]` and `[{}]` hold no call.
    """
    try:
        calls = parse_output(output, Language.PYTHON)
    except ParseError:
        return False
    return not (len(calls) == 0 or (len(calls) == 1 and len(calls[0]) == 0))


# ---------------------------------------------------------------- list results


def _call_from_object(item: object, index: int) -> Call:
    if not isinstance(item, dict):
        raise ParseError(f"result[{index}]: expected a call object, got {type(item).__name__}")
    if "function" in item and isinstance(item["function"], dict) and "name" in item["function"]:
        item = item["function"]  # OpenAI tool call: {"type": "function", "function": {...}}
    if set(item) == {"name", "arguments"} and isinstance(item["name"], str):
        return {item["name"]: _arguments(item["arguments"], index)}
    if len(item) != 1:
        raise ParseError(f"result[{index}]: a call is one {{name: arguments}} pair, got keys {sorted(item)}")
    ((name, arguments),) = item.items()
    return {name: _arguments(arguments, index)}


def _arguments(arguments: object, index: int) -> Any:
    if isinstance(arguments, str):  # function-calling models store the arguments as a JSON string
        try:
            return json.loads(arguments)
        except json.JSONDecodeError as error:
            raise ParseError(f"result[{index}]: arguments are not JSON ({error.msg})") from None
    return arguments


def _check_format(calls: list[Call]) -> None:
    for index, call in enumerate(calls):
        if not isinstance(call, dict) or len(call) != 1:
            raise ParseError(f"result[{index}]: not a single {{name: arguments}} pair")
        if not isinstance(next(iter(call.values())), dict):
            raise ParseError(f"result[{index}]: arguments must be an object of parameter values")


# ---------------------------------------------------------------- string results


def _parse_text(text: str, language: Language) -> list[Call]:
    # As the published decoder: strip backticks, newlines and spaces, then make sure the text is bracketed.
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    if language is Language.PYTHON:
        return _parse_python(text)
    # For Java and JavaScript only the first call is read, from inside the brackets.
    return [_parse_source_call(text[1:-1], language)]


def _parse_python(text: str) -> list[Call]:
    try:
        tree = ast.parse(text.strip().strip("'"), mode="eval")
    except SyntaxError as error:
        raise ParseError(f"not Python call syntax ({error.msg})") from None
    body = tree.body
    if isinstance(body, ast.Call):
        return [_python_call(body)]
    if not isinstance(body, (ast.List, ast.Tuple, ast.Set)):
        raise ParseError(f"expected a list of calls, got a {type(body).__name__} expression")
    calls = []
    for element in body.elts:
        if not isinstance(element, ast.Call):
            raise ParseError(f"expected a call, got a {type(element).__name__} expression")
        calls.append(_python_call(element))
    return calls


def _python_call(node: ast.Call) -> Call:
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    name = ".".join(reversed(parts))
    # Positional arguments are dropped: the rules only read keyword arguments.
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ParseError("`**kwargs` in a call cannot be decoded")
        arguments[keyword.arg] = _python_value(keyword.value)
    return {name: arguments}


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _python_value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        # The published decoder negates the operand of every unary operator (so `+5` reads as -5).
        if not isinstance(node.operand, ast.Constant):
            raise ParseError(f"cannot decode the value {ast.unparse(node)!r}")
        try:
            return -node.operand.value
        except TypeError:
            raise ParseError(f"cannot decode the value {ast.unparse(node)!r}") from None
    if isinstance(node, ast.List):
        return [_python_value(element) for element in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_python_value(element) for element in node.elts)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ParseError("`**mapping` in a dict cannot be decoded")
        return {_python_value(k): _python_value(v) for k, v in zip(node.keys, node.values, strict=False)}  # type: ignore[arg-type]
    if isinstance(node, ast.BinOp):
        return _arithmetic(node)  # upstream evaluates it: `2**10` gives 1024
    if isinstance(node, ast.Name):
        return node.id  # a variable name is kept as its text
    if isinstance(node, ast.Call):
        # A call as a value: its text when it has no keyword arguments, else a nested call object.
        return ast.unparse(node) if not node.keywords else _python_call(node)
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise ParseError(f"cannot decode the value {ast.unparse(node)!r} ({type(node).__name__})")


def _arithmetic(node: ast.BinOp) -> Any:
    op = _BINARY.get(type(node.op))
    if op is None:
        raise ParseError(f"cannot evaluate {ast.unparse(node)!r}")
    left, right = (_arithmetic_operand(side) for side in (node.left, node.right))
    if op is operator.pow and _huge_power(left, right):
        raise ParseError(f"refusing to evaluate the huge power {ast.unparse(node)!r}")
    if op is operator.mul and any(isinstance(side, (str, bytes)) for side in (left, right)):
        count = right if isinstance(right, int) else left
        if isinstance(count, int) and count > 10_000:
            raise ParseError(f"refusing to evaluate the huge repetition {ast.unparse(node)!r}")
    try:
        return op(left, right)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ParseError(f"cannot evaluate {ast.unparse(node)!r} ({error})") from None


def _huge_power(base: Any, exponent: Any) -> bool:
    if not isinstance(base, (int, float)) or not isinstance(exponent, (int, float)):
        return False
    return abs(exponent) > 1000 or (isinstance(base, int) and abs(exponent) * abs(base).bit_length() > 4096)


def _arithmetic_operand(node: ast.expr) -> Any:
    if isinstance(node, (ast.Constant, ast.UnaryOp, ast.BinOp)):
        return _python_value(node)
    raise ParseError(f"cannot evaluate an expression over {ast.unparse(node)!r}")


# ---------------------------------------------------------------- Java / JavaScript call expressions

_CALLEE = re.compile(r"\s*([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*\(")
_NAMED = re.compile(r"^([A-Za-z_$][\w$]*)\s*=(?![=>])\s*(.*)$", re.DOTALL)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
# `new T(args) { body }`: the published Java decoder rebuilds an object creation from its type and
# arguments only, so an anonymous class body (the double-brace `{{ put(...); }}` idiom) is dropped.
_JAVA_NEW_WITH_BODY = re.compile(r"^(new\s+[\w$.]+\s*(?:<[^()]*>)?\s*\(.*?\))\s*\{.*\}$", re.DOTALL)


def _parse_source_call(text: str, language: Language) -> Call:
    match = _CALLEE.match(text)
    if not match:
        raise ParseError(f"no {language.value} call expression found in {text[:80]!r}")
    name = re.sub(r"\s+", "", match.group(1))
    close = _matching_close(text, match.end() - 1)
    rest = text[close + 1 :].strip()
    if rest not in ("", ";"):
        raise ParseError(f"expected one {language.value} call, found more text after it: {rest[:40]!r}")
    arguments: dict[str, Any] = {}
    for part in _split_top_level(text[match.end() : close], generics=language is Language.JAVA):
        named = _NAMED.match(part)
        if not named:
            continue  # positional arguments carry no parameter name; the rules cannot use them
        key, value = named.group(1), named.group(2).strip()
        if key in arguments:
            raise ParseError(f"parameter {key!r} given twice")
        arguments[key] = _source_value(value, language)
    return {name: arguments}


def _source_value(value: str, language: Language) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]  # a string (or Java char) literal at the top level loses its quotes
    if language is Language.JAVA:
        body = _JAVA_NEW_WITH_BODY.match(value)
        if body:
            return body.group(1)
    return value


def _matching_close(text: str, open_index: int) -> int:
    depth = 0
    index = open_index
    while index < len(text):
        char = text[index]
        if char in "\"'`":
            index = _skip_string(text, index)
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _OPENERS.values():
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ParseError("unbalanced brackets in the call")


def _skip_string(text: str, start: int) -> int:
    quote = text[start]
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index + 1
        index += 1
    raise ParseError("unterminated string literal in the call")


def _split_top_level(text: str, *, generics: bool = False) -> list[str]:
    """Split at commas outside brackets, strings and (Java) type arguments such as `Map<String, Object>`."""
    parts: list[str] = []
    depth = 0
    angles = 0
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        previous = text[index - 1] if index else ""
        if char in "\"'`":
            index = _skip_string(text, index)
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _OPENERS.values():
            depth -= 1
        elif generics and char == "<" and (previous.isalnum() or previous in "_$"):
            angles += 1
        elif generics and char == ">" and angles and previous != "-":
            angles -= 1
        elif char == "," and depth == 0 and angles == 0:
            parts.append(text[start:index].strip())
            start = index + 1
        index += 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return [part for part in parts if part]
