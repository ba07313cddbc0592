"""The published checker's rules, one at a time, on small hand-made items (quirks included)."""

from __future__ import annotations

from typing import Any

import pytest

from mor.evals.bfcl import BfclDataError, FailureReason, Language, check_ast, check_relevance, normalize_string


def _function(name: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": "",
        "parameters": {"type": "dict", "properties": properties, "required": required or []},
    }


def _check(
    properties: dict[str, Any],
    arguments: dict[str, Any],
    acceptable: dict[str, list[Any]],
    *,
    required: list[str] | None = None,
    language: Language = Language.PYTHON,
    name: str = "f",
) -> Any:
    functions = [_function(name, properties, required)]
    return check_ast(functions, [{name: arguments}], [{name: acceptable}], "simple_python", language)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("April 1, 2024", "april12024"),
        ("New-York_City", "newyorkcity"),
        ("2*3^2/1.5", "23215"),
        ("it's", 'it"s'),
        ("Tab\tstays", "tab\tstays"),
    ],
)
def test_normalize_string_drops_the_published_characters(text: str, normalized: str) -> None:
    assert normalize_string(text) == normalized


def test_strings_compare_after_normalisation() -> None:
    properties = {"city": {"type": "string"}}
    assert _check(properties, {"city": "new york, ny"}, {"city": ["New York, NY"]}).passed
    assert _check(properties, {"city": "NEW-YORK NY."}, {"city": ["New York, NY"]}).passed
    verdict = _check(properties, {"city": "Newark"}, {"city": ["New York, NY"]})
    assert (verdict.reason, verdict.error_type) == (FailureReason.WRONG_VALUE, "value_error:string")


def test_int_is_accepted_for_float_only_at_the_top_level() -> None:
    assert _check({"x": {"type": "float"}}, {"x": 5}, {"x": [5.0]}).passed
    array = {"xs": {"type": "array", "items": {"type": "float"}}}
    assert _check(array, {"xs": [1.0, 2.0]}, {"xs": [[1.0, 2.0]]}).passed
    nested = _check(array, {"xs": [1, 2]}, {"xs": [[1.0, 2.0]]})
    assert (nested.reason, nested.error_type) == (FailureReason.WRONG_TYPE, "type_error:nested")
    # ...unless the ground truth's own elements are ints: an element may take the answer's element type.
    assert _check(array, {"xs": [1, 2]}, {"xs": [[1, 2]]}).passed


def test_bool_is_not_an_integer_and_strings_are_not_numbers() -> None:
    verdict = _check({"n": {"type": "integer"}}, {"n": True}, {"n": [1]})
    assert (verdict.reason, verdict.error_type) == (FailureReason.WRONG_TYPE, "type_error:simple")
    assert _check({"n": {"type": "integer"}}, {"n": "5"}, {"n": [5]}).reason is FailureReason.WRONG_TYPE


def test_a_valid_optional_parameter_absent_from_the_ground_truth_fails() -> None:
    properties = {"city": {"type": "string"}, "unit": {"type": "string"}}
    verdict = _check(properties, {"city": "Paris", "unit": "celsius"}, {"city": ["Paris"]}, required=["city"])
    assert (verdict.reason, verdict.error_type) == (
        FailureReason.UNEXPECTED_PARAMETER,
        "simple_function_checker:unexpected_param",
    )


def test_empty_string_means_the_parameter_may_be_omitted() -> None:
    properties = {"city": {"type": "string"}, "unit": {"type": "string"}}
    assert _check(properties, {"city": "Paris"}, {"city": ["Paris"], "unit": ["", "celsius"]}).passed
    assert _check(properties, {"city": "Paris", "unit": "Celsius"}, {"city": ["Paris"], "unit": ["", "celsius"]}).passed
    verdict = _check(properties, {"city": "Paris"}, {"city": ["Paris"], "unit": ["celsius"]})
    assert (verdict.reason, verdict.error_type) == (
        FailureReason.MISSING_PARAMETER,
        "simple_function_checker:missing_optional",
    )


def test_required_parameters_must_be_present() -> None:
    verdict = _check({"a": {"type": "integer"}}, {}, {"a": [1]}, required=["a"])
    assert (verdict.reason, verdict.error_type) == (
        FailureReason.MISSING_PARAMETER,
        "simple_function_checker:missing_required",
    )


def test_wrong_function_name() -> None:
    functions = [_function("f", {})]
    verdict = check_ast(functions, [{"g": {}}], [{"f": {}}], "simple_python")
    assert (verdict.reason, verdict.error_type) == (
        FailureReason.WRONG_FUNCTION,
        "simple_function_checker:wrong_func_name",
    )


def test_underscore_names_for_apis_that_forbid_dots() -> None:
    functions = [_function("math.hypot", {})]
    assert not check_ast(functions, [{"math_hypot": {}}], [{"math.hypot": {}}], "simple_python").passed
    output, expected = [{"math_hypot": {}}], [{"math.hypot": {}}]
    assert check_ast(functions, output, expected, "simple_python", underscore_names=True).passed


def test_lists_compare_in_order_with_strings_normalised() -> None:
    properties = {"tags": {"type": "array", "items": {"type": "string"}}}
    assert _check(properties, {"tags": ["New York", "LA"]}, {"tags": [["new-york", "la"]]}).passed
    verdict = _check(properties, {"tags": ["la", "new york"]}, {"tags": [["new-york", "la"]]})
    assert (verdict.reason, verdict.error_type) == (FailureReason.WRONG_VALUE, "value_error:list/tuple")
    # "" among the acceptable values reads as an empty list.
    assert _check(properties, {"tags": []}, {"tags": ["", ["a"]]}).passed


def test_tuples_are_compared_as_lists() -> None:
    properties = {"point": {"type": "tuple", "items": {"type": "float"}}}
    assert _check(properties, {"point": (1.0, 2.0)}, {"point": [[1.0, 2.0]]}).passed


def test_dicts_compare_key_by_key() -> None:
    properties = {"opts": {"type": "dict"}}
    acceptable = {"opts": [{"a": [1], "b": ["x y", ""]}]}
    assert _check(properties, {"opts": {"a": 1}}, acceptable).passed
    assert _check(properties, {"opts": {"a": 1, "b": "X-Y"}}, acceptable).passed
    extra = _check(properties, {"opts": {"a": 1, "c": 2}}, acceptable)
    assert (extra.reason, extra.error_type) == (FailureReason.WRONG_VALUE, "value_error:dict_key")
    wrong = _check(properties, {"opts": {"a": 2}}, acceptable)
    assert wrong.error_type == "value_error:dict_value"
    missing = _check(properties, {"opts": {"b": "x y"}}, acceptable)
    assert (missing.error_type, missing.message) == ("value_error:dict_key", "Missing dict key parameter: 'a'.")


def test_a_dict_inside_a_dict_never_matches() -> None:
    # The rules compare one level deep: the inner dict meets its ground truth's {key: [values]} form.
    properties = {"opts": {"type": "dict"}}
    verdict = _check(properties, {"opts": {"outer": {"inner": 1}}}, {"opts": [{"outer": [{"inner": [1]}]}]})
    assert (verdict.reason, verdict.error_type) == (FailureReason.WRONG_VALUE, "value_error:dict_value")


def test_lists_of_dicts_compare_dict_by_dict_in_order() -> None:
    properties = {"rows": {"type": "array", "items": {"type": "dict"}}}
    acceptable = {"rows": [[{"k": ["a"]}, {"k": ["b"]}]]}
    assert _check(properties, {"rows": [{"k": "A"}, {"k": "b"}]}, acceptable).passed
    assert _check(properties, {"rows": [{"k": "b"}, {"k": "a"}]}, acceptable).error_type == "value_error:dict_value"
    count = _check(properties, {"rows": [{"k": "a"}]}, acceptable)
    assert count.error_type == "value_error:list_dict_count"


def test_a_ground_truth_of_another_type_is_a_variable_compared_exactly() -> None:
    # An integer parameter whose ground truth is a string names a variable: the output must give that name
    # as-is, without string normalisation.
    properties = {"n": {"type": "integer"}}
    assert _check(properties, {"n": "count"}, {"n": ["count"]}).passed
    assert _check(properties, {"n": 3}, {"n": ["count"]}).reason is FailureReason.WRONG_VALUE
    assert _check(properties, {"n": "Count"}, {"n": ["count"]}).error_type == "value_error:others"


def _two_calls(xs: tuple[list[Any], list[Any]], outputs: list[int]) -> Any:
    functions = [_function("f", {"x": {"type": "integer"}}, ["x"])]
    ground_truth = [{"f": {"x": xs[0]}}, {"f": {"x": xs[1]}}]
    return check_ast(functions, [{"f": {"x": x}} for x in outputs], ground_truth, "parallel")


def test_parallel_calls_match_in_any_order() -> None:
    assert _two_calls(([1], [2]), [1, 2]).passed
    assert _two_calls(([1], [2]), [2, 1]).passed


def test_parallel_matching_is_greedy_without_backtracking() -> None:
    # Expected #0 accepts 1 or 2, expected #1 only 1. The pairing #0->2, #1->1 exists, but #0 takes the
    # first output that fits (1) and leaves #1 nothing: the published rule fails this output.
    greedy = _two_calls(([1, 2], [1]), [1, 2])
    assert not greedy.passed
    assert (greedy.reason, greedy.error_type) == (
        FailureReason.WRONG_VALUE,
        "parallel_function_checker_no_order:cannot_find_match",
    )
    assert _two_calls(([1, 2], [1]), [2, 1]).passed


def test_parallel_reports_the_attempt_on_the_right_function() -> None:
    functions = [_function("f", {"x": {"type": "integer"}}, ["x"]), _function("g", {"y": {"type": "string"}}, ["y"])]
    ground_truth = [{"f": {"x": [1]}}, {"g": {"y": ["a"]}}]
    verdict = check_ast(functions, [{"g": {"y": "a"}}, {"f": {"x": 9}}], ground_truth, "parallel_multiple")
    assert verdict.reason is FailureReason.WRONG_VALUE
    verdict = check_ast(functions, [{"g": {"y": "a"}}, {"h": {}}], ground_truth, "parallel_multiple")
    assert verdict.reason is FailureReason.WRONG_FUNCTION


def test_counts_and_empty_outputs() -> None:
    functions = [_function("f", {}), _function("g", {})]
    assert check_ast(functions, [{"g": {}}], [{"g": {}}], "multiple").passed
    two = check_ast(functions, [{"g": {}}, {"g": {}}], [{"g": {}}], "multiple")
    assert (two.reason, two.error_type) == (FailureReason.WRONG_COUNT, "multiple_function_checker:wrong_count")
    none = check_ast(functions, [], [{"g": {}}], "live_multiple")
    assert (none.reason, none.error_type) == (FailureReason.NO_CALL, "multiple_function_checker:wrong_count")


def test_simple_checks_the_first_function_whatever_the_ground_truth_names() -> None:
    functions = [_function("f", {}), _function("g", {})]
    assert check_ast(functions, [{"f": {}}], [{"g": {}}], "simple_python").passed


def test_a_ground_truth_function_missing_from_the_item_is_a_data_error() -> None:
    with pytest.raises(BfclDataError, match="'h', which is not among the item's functions"):
        check_ast([_function("f", {})], [{"f": {}}], [{"h": {}}], "multiple")


def test_an_unknown_declared_type_is_a_data_error() -> None:
    with pytest.raises(BfclDataError, match="type 'number' is not a python type"):
        _check({"n": {"type": "number"}}, {"n": 1}, {"n": [1]})


def test_java_values_are_source_text_converted_by_declared_type() -> None:
    java = Language.JAVA
    assert _check({"n": {"type": "long"}}, {"n": "5L"}, {"n": [5]}, language=java).passed
    assert _check({"n": {"type": "long"}}, {"n": "5"}, {"n": [5]}, language=java).reason is FailureReason.WRONG_TYPE
    assert _check({"b": {"type": "boolean"}}, {"b": "true"}, {"b": [True]}, language=java).passed
    assert _check({"d": {"type": "double"}}, {"d": "0.5"}, {"d": [0.5]}, language=java).passed
    assert _check({"f": {"type": "float"}}, {"f": "2.5f"}, {"f": [2.5]}, language=java).passed
    raw = _check({"n": {"type": "integer"}}, {"n": 5}, {"n": [5]}, language=java)
    assert (raw.reason, raw.error_type) == (FailureReason.WRONG_TYPE, "type_error:java")
    hashmap = {"m": {"type": "HashMap"}}
    text = 'new HashMap<String, Object>() {{ put("limit", 50); put("mode", "Fast"); }}'
    assert _check(hashmap, {"m": text}, {"m": [{"limit": [50], "mode": ["fast"]}]}, language=java).passed
    arraylist = {"ids": {"type": "ArrayList", "items": {"type": "String"}}}
    text = 'new ArrayList<>(Arrays.asList("a", "b"))'
    assert _check(arraylist, {"ids": text}, {"ids": [["a", "b"]]}, language=java).passed


def test_java_array_of_string_keeps_its_quotes() -> None:
    array = {"names": {"type": "Array", "items": {"type": "String"}}}
    quoted = _check(array, {"names": 'new String[]{"a", "b"}'}, {"names": [["a", "b"]]}, language=Language.JAVA)
    assert quoted.error_type == "value_error:list/tuple"
    assert _check(array, {"names": "new String[]{a, b}"}, {"names": [["a", "b"]]}, language=Language.JAVA).passed


def test_javascript_values_are_source_text_converted_by_declared_type() -> None:
    js = Language.JAVASCRIPT
    assert _check({"s": {"type": "String"}}, {"s": "'Hello'"}, {"s": ["hello"]}, language=js).passed
    assert _check({"n": {"type": "Bigint"}}, {"n": "12n"}, {"n": [12]}, language=js).passed
    assert _check({"x": {"type": "float"}}, {"x": "3"}, {"x": [3.0]}, language=js).passed
    exponent = _check({"x": {"type": "float"}}, {"x": "1e-5"}, {"x": [0.00001]}, language=js)
    assert exponent.reason is FailureReason.WRONG_TYPE
    array = {"xs": {"type": "array", "items": {"type": "String"}}}
    assert _check(array, {"xs": '["a", "b"]'}, {"xs": [["a", "b"]]}, language=js).passed
    obj = {"o": {"type": "dict"}}
    assert _check(obj, {"o": '{"key": "value", "n": 2}'}, {"o": [{"key": ["value"], "n": [2]}]}, language=js).passed
    raw = _check({"s": {"type": "String"}}, {"s": 5}, {"s": ["5"]}, language=js)
    assert raw.error_type == "type_error:js"


def test_relevance_rules() -> None:
    assert check_relevance(False, "irrelevance").passed
    assert check_relevance(False, "live_irrelevance").passed
    assert check_relevance(True, "irrelevance").reason is FailureReason.UNEXPECTED_CALL
    assert check_relevance(True, "live_relevance").passed
    assert check_relevance(False, "live_relevance").reason is FailureReason.NO_CALL
