"""The BFCL AST checker, re-implemented from the benchmark's published rules, quirks included.

Users compare our numbers with the leaderboard's, so every rule below is the published one even where it is
surprising; the surprising ones carry a comment. In short:

- simple categories: exactly one call, checked against the item's (only) function;
- multiple: exactly as many calls as expected (one), checked against the expected function;
- parallel and parallel_multiple: as many calls as expected, matched *greedily* (see `_check_parallel`);
- a call: the function name, every required parameter present, no parameter that is undeclared or absent
  from the ground truth (even a valid optional one), each value's type and value, and every ground-truth
  parameter present unless `""` is among its acceptable values (meaning "may be omitted");
- types: Python's own types, with an int accepted for a float parameter only at the top level; Java and
  JavaScript values arrive as source-text strings and are converted first (`mor.evals.bfcl.convert`);
- values: strings compared after normalisation (`normalize_string`), lists element-wise with their strings
  normalised, dicts key by key against per-key acceptable values, lists of dicts dict by dict in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mor.evals.bfcl.convert import JAVA_TYPES, JS_TYPES, NESTED_TYPES, UnsupportedTypeError, java_value, js_value
from mor.evals.bfcl.data import BfclDataError, Language

__all__ = [
    "FailureReason",
    "Verdict",
    "check_ast",
    "check_relevance",
    "normalize_string",
]

_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_PYTHON_NESTED = frozenset({"array", "tuple"})
_NORMALIZE = re.compile(r"[ ,./\-_*^]")


class FailureReason(StrEnum):
    """Why an item failed, in words a user can act on (the published error type is kept alongside)."""

    WRONG_FUNCTION = "wrong_function"
    MISSING_PARAMETER = "missing_parameter"
    UNEXPECTED_PARAMETER = "unexpected_parameter"
    WRONG_TYPE = "wrong_type"
    WRONG_VALUE = "wrong_value"
    WRONG_COUNT = "wrong_count"
    NO_CALL = "no_call"
    UNEXPECTED_CALL = "unexpected_call"
    UNPARSEABLE = "unparseable"
    MISSING_RESULT = "missing_result"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one output: passed, else a reason, the published error type and a message."""

    passed: bool
    reason: FailureReason | None = None
    error_type: str = ""
    message: str = ""


_PASS = Verdict(True)


def _fail(reason: FailureReason, error_type: str, message: str) -> Verdict:
    return Verdict(False, reason, error_type, message)


def normalize_string(text: str) -> str:
    """Normalise a string as the rules do before comparing: drop ` ,./-_*^`, lowercase, `'` -> `"`.

    So "April 1, 2024", "april 1 2024" and "April-1-2024" are equal; so are "New York" and "newyork".
    """
    # The published rule, kept as is although it also makes "1.5" equal "15" and "a_b" equal "ab".
    return _NORMALIZE.sub("", text).lower().replace("'", '"')


# ---------------------------------------------------------------- entry points


def check_ast(
    functions: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    ground_truth: list[dict[str, dict[str, list[Any]]]],
    category: str,
    language: Language = Language.PYTHON,
    *,
    underscore_names: bool = False,
) -> Verdict:
    """Check decoded `calls` against an AST category's ground truth.

    `underscore_names`: the model's API forbids "." in function names, so `a.b` is expected as `a_b`
    (as the leaderboard does for OpenAI-style function-calling models).
    """
    if "parallel" in category:
        return _check_parallel(functions, calls, ground_truth, language, underscore_names)
    if "multiple" in category:
        if len(calls) != len(ground_truth):
            return _count_failure("multiple_function_checker", calls, len(ground_truth))
        expected = ground_truth[0]
        return _check_call(_find_function(functions, expected), calls[0], expected, language, underscore_names)
    if len(calls) != 1:
        return _count_failure("simple_function_checker", calls, 1)
    # The simple checker uses the item's first function whatever name the ground truth gives.
    return _check_call(functions[0], calls[0], ground_truth[0], language, underscore_names)


def check_relevance(has_call: bool, category: str) -> Verdict:
    """Irrelevance categories pass when the output holds no call; live_relevance when it holds one (any)."""
    if "irrelevance" in category:
        if has_call:
            return _fail(
                FailureReason.UNEXPECTED_CALL,
                "irrelevance_error:decoder_success",
                "The output holds a function call, but none of the functions fits the question.",
            )
        return _PASS
    if not has_call:
        return _fail(
            FailureReason.NO_CALL,
            "relevance_error:decoder_failed",
            "The output holds no function call, but one of the functions fits the question.",
        )
    return _PASS


def _count_failure(checker: str, calls: list[dict[str, Any]], expected: int) -> Verdict:
    # The published error type is wrong_count either way; an empty output is reported as "no call".
    reason = FailureReason.NO_CALL if not calls else FailureReason.WRONG_COUNT
    return _fail(reason, f"{checker}:wrong_count", f"Wrong number of functions: got {len(calls)}, expected {expected}.")


def _find_function(functions: list[dict[str, Any]], name: str | dict[str, Any]) -> dict[str, Any]:
    wanted = name if isinstance(name, str) else next(iter(name))
    for function in functions:
        if function["name"] == wanted:
            return function
    raise BfclDataError(f"ground truth names the function {wanted!r}, which is not among the item's functions")


# ---------------------------------------------------------------- parallel


def _check_parallel(
    functions: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]],
    language: Language,
    underscore_names: bool,
) -> Verdict:
    if len(calls) != len(ground_truth):
        return _count_failure("parallel_function_checker_no_order", calls, len(ground_truth))
    # Greedy, as published: expected calls are taken in order, and each takes the FIRST not-yet-taken output
    # call that passes. There is no backtracking, so an output can fail although a one-to-one matching
    # exists (an early expected call may take the output a later, stricter one needed).
    taken: set[int] = set()
    for position, expected in enumerate(ground_truth):
        function = _find_function(functions, expected)
        attempts: list[Verdict] = []
        for index, call in enumerate(calls):
            if index in taken:
                continue
            verdict = _check_call(function, call, expected, language, underscore_names)
            if verdict.passed:
                taken.add(index)
                break
            attempts.append(verdict)
        else:
            # Report the attempt on a call of the right function if there was one: it says what was wrong.
            named = [v for v in attempts if v.reason is not FailureReason.WRONG_FUNCTION]
            best = named[0] if named else attempts[0]
            return _fail(
                best.reason or FailureReason.WRONG_VALUE,
                "parallel_function_checker_no_order:cannot_find_match",
                f"No output call matches expected call #{position} ({function['name']}): {best.message}",
            )
    return _PASS


# ---------------------------------------------------------------- one call


def _check_call(
    function: dict[str, Any],
    call: dict[str, Any],
    expected: dict[str, dict[str, list[Any]]],
    language: Language,
    underscore_names: bool,
) -> Verdict:
    acceptable = next(iter(expected.values()))
    name = function["name"]
    if underscore_names and "." in name:
        name = name.replace(".", "_")
    if name not in call:
        return _fail(
            FailureReason.WRONG_FUNCTION,
            "simple_function_checker:wrong_func_name",
            f"Function name {name!r} not found in model output (got {', '.join(map(repr, call)) or 'nothing'}).",
        )
    arguments: dict[str, Any] = call[name]
    declared: dict[str, Any] = function["parameters"]["properties"]
    for param in function["parameters"].get("required", []):
        if param not in arguments:
            return _fail(
                FailureReason.MISSING_PARAMETER,
                "simple_function_checker:missing_required",
                f"Missing required parameter: {param!r}.",
            )
    for param, value in arguments.items():
        # A parameter the ground truth does not list fails even when the function declares it as optional.
        if param not in declared or param not in acceptable:
            return _fail(
                FailureReason.UNEXPECTED_PARAMETER,
                "simple_function_checker:unexpected_param",
                f"Unexpected parameter: {param!r}.",
            )
        verdict = _check_param(param, value, declared[param], acceptable[param], language)
        if not verdict.passed:
            return verdict
    for param, values in acceptable.items():
        if param not in arguments and "" not in values:
            return _fail(
                FailureReason.MISSING_PARAMETER,
                "simple_function_checker:missing_optional",
                f"Optional parameter {param!r} not provided and not marked as optional.",
            )
    return _PASS


def _check_param(param: str, value: Any, spec: dict[str, Any], acceptable: list[Any], language: Language) -> Verdict:
    declared = spec["type"]
    nested: type | None = None
    if language is Language.PYTHON:
        expected_type = _lookup(_PYTHON_TYPES, declared, param, language)
        if declared in _PYTHON_NESTED:
            nested = _lookup(_PYTHON_TYPES, spec["items"]["type"], param, language)
    else:
        table = JAVA_TYPES if language is Language.JAVA else JS_TYPES
        expected_type = _lookup(table, declared, param, language)
        if not isinstance(value, str):
            # Java and JavaScript values must be given as strings of source text.
            return _fail(
                FailureReason.WRONG_TYPE,
                f"type_error:{'java' if language is Language.JAVA else 'js'}",
                f"Incorrect type for parameter {param!r}. Expected type String, got {type(value).__name__}. "
                f"Parameter value: {value!r}.",
            )
        convert = java_value if language is Language.JAVA else js_value
        item_type = spec["items"]["type"] if declared in NESTED_TYPES else None
        if item_type is not None:
            nested = _lookup(table, item_type, param, language)
        try:
            value = convert(value, declared, item_type)
        except UnsupportedTypeError as error:
            raise BfclDataError(f"parameter {param!r}: {error}") from None

    if declared == "tuple" and type(value) is tuple:
        value = list(value)
    # int is accepted for float here, at the top level only: inside a list an int stays an int and fails the
    # element type check (unless the ground truth's own elements are ints).
    if language is Language.PYTHON and declared == "float" and type(value) is int:
        value = float(value)

    typed = _type_check(param, value, acceptable, declared, expected_type, nested)
    if not typed.verdict.passed:
        return typed.verdict
    # A ground truth whose type differs from the declared one names a variable: compare it as-is, below.
    if not typed.is_variable:
        if expected_type is dict:
            return _check_dict(param, value, acceptable)
        if expected_type is list and nested is dict:
            return _check_list_of_dicts(param, value, acceptable)
        if expected_type is str:
            return _check_string(param, value, acceptable)
        if expected_type is list:
            return _check_list(param, value, acceptable)
    if value not in acceptable:
        return _fail(
            FailureReason.WRONG_VALUE,
            "value_error:others",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
        )
    return _PASS


def _lookup(table: dict[str, type], declared: str, param: str, language: Language) -> type:
    if declared not in table:
        raise BfclDataError(
            f"parameter {param!r}: type {declared!r} is not a {language.value} type the BFCL rules know "
            f"({', '.join(table)})"
        )
    return table[declared]


# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class _Typed:
    verdict: Verdict
    is_variable: bool = False


def _answer_type(acceptable: list[Any]) -> type | None:
    """The type of the first acceptable value other than "" (None when "" is all there is)."""
    for answer in acceptable:
        if answer != "":
            return type(answer)
    return None


def _type_check(
    param: str,
    value: Any,
    acceptable: list[Any],
    declared: str,
    expected_type: type,
    nested: type | None,
) -> _Typed:
    answer_type = _answer_type(acceptable)
    is_variable = answer_type is not None and answer_type is not expected_type
    nested_failed = False
    if type(value) is expected_type:
        if nested is None:
            return _Typed(_PASS, is_variable)
        for answer in acceptable:
            # Each element must have the nested type, or the type of that answer's first element. An
            # acceptable value that is not a list (e.g. "") passes the nested check outright.
            if type(answer) is not list or all(
                _type_check(param, element, answer, str(nested), nested, None).verdict.passed for element in value
            ):
                return _Typed(_PASS, is_variable)
        nested_failed = True
    if answer_type is not None and type(value) is answer_type:
        if not nested_failed:
            # The value has the ground truth's type rather than the declared one: a variable, compared as-is.
            return _Typed(_PASS, True)
        return _Typed(
            _fail(
                FailureReason.WRONG_TYPE,
                "type_error:nested",
                f"Nested type checking failed for parameter {param!r}. Expected outer type {declared} with "
                f"inner type {nested.__name__ if nested else None}. Parameter value: {value!r}.",
            )
        )
    return _Typed(
        _fail(
            FailureReason.WRONG_TYPE,
            "type_error:simple",
            f"Incorrect type for parameter {param!r}. Expected type {declared}, got {type(value).__name__}. "
            f"Parameter value: {value!r}.",
        )
    )


# ---------------------------------------------------------------- values


def _normalized(value: Any) -> Any:
    return normalize_string(value) if type(value) is str else value


def _check_string(param: str, value: str, acceptable: list[Any]) -> Verdict:
    if normalize_string(value) not in [normalize_string(a) for a in acceptable if type(a) is str]:
        return _fail(
            FailureReason.WRONG_VALUE,
            "value_error:string",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}. Case insensitive.",
        )
    return _PASS


def _check_list(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    # Strings inside the list are normalised one level deep; nested lists and dicts compare exactly. An
    # acceptable "" reads as an empty list, so `[]` matches an omittable list parameter.
    candidate = [_normalized(element) for element in value]
    options = [[_normalized(element) for element in answer] for answer in acceptable if isinstance(answer, (list, str))]
    if candidate not in options:
        return _fail(
            FailureReason.WRONG_VALUE,
            "value_error:list/tuple",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
        )
    return _PASS


def _check_dict(param: str, value: Any, acceptable: list[Any]) -> Verdict:
    # One level only: each key's value must be among that key's acceptable values (strings normalised); a
    # dict nested inside is compared to the ground truth's nested {key: [values]} as-is and so never matches.
    verdict = _fail(FailureReason.WRONG_VALUE, "dict_checker:unclear", f"No acceptable dict for {param!r}.")
    for answer in acceptable:
        if answer == "":
            continue
        if not isinstance(answer, dict) or not isinstance(value, dict):
            verdict = _fail(
                FailureReason.WRONG_VALUE,
                "value_error:dict_value",
                f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
            )
            continue
        verdict = _PASS
        for key, item in value.items():
            if key not in answer:
                verdict = _fail(
                    FailureReason.WRONG_VALUE, "value_error:dict_key", f"Unexpected dict key parameter: {key!r}."
                )
                break
            options = [_normalized(option) for option in answer[key]]
            if _normalized(item) not in options:
                verdict = _fail(
                    FailureReason.WRONG_VALUE,
                    "value_error:dict_value",
                    f"Invalid value for parameter {key!r}: {item!r}. Expected one of {options}.",
                )
                break
        for key, options in answer.items():
            if key not in value and "" not in options:
                verdict = _fail(
                    FailureReason.WRONG_VALUE, "value_error:dict_key", f"Missing dict key parameter: {key!r}."
                )
                break
        if verdict.passed:
            return _PASS
    return verdict


def _check_list_of_dicts(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    # Dicts are compared in order, the i-th output dict against the i-th expected one.
    verdict = _fail(FailureReason.WRONG_VALUE, "list_dict_checker:unclear", f"No acceptable list for {param!r}.")
    for answer in acceptable:
        expected = answer if isinstance(answer, list) else ([] if answer == "" else None)
        if expected is None or len(value) != len(expected):
            verdict = _fail(
                FailureReason.WRONG_VALUE,
                "value_error:list_dict_count",
                f"Wrong number of dictionaries in the list for parameter {param!r}.",
            )
            continue
        for element, expected_dict in zip(value, expected, strict=False):
            verdict = _check_dict(param, element, [expected_dict])
            if not verdict.passed:
                break
        else:
            return _PASS
    return verdict
