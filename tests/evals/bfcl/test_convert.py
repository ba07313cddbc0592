"""Java and JavaScript source-text values converted by the published rules, quirks included."""

from __future__ import annotations

from typing import Any

import pytest

from mor.evals.bfcl.convert import UnsupportedTypeError, java_value, js_value


@pytest.mark.parametrize(
    ("text", "declared", "nested", "expected"),
    [
        ("42", "integer", None, 42),
        ("-7", "short", None, -7),
        ("4.2", "integer", None, "4.2"),
        ("5L", "long", None, 5),
        ("5", "long", None, "5"),
        ("2.5f", "float", None, 2.5),
        ("3e2F", "float", None, 300.0),
        ("2.5", "float", None, "2.5"),
        ("0.5", "double", None, 0.5),
        ("1.5e-3", "double", None, 0.0015),
        ("true", "boolean", None, True),
        ("false", "boolean", None, False),
        ("TRUE", "boolean", None, "TRUE"),
        ("'a'", "char", None, "'a'"),  # the published char pattern never matches: the text stays as given
        ("hello", "String", None, "hello"),
        ('"hello"', "String", None, '"hello"'),  # String keeps quotes (the decoder strips top-level ones)
        ("someObject", "any", None, "someObject"),
        ("new int[]{1, 2, 3}", "Array", "integer", [1, 2, 3]),
        ("new int[] { }", "Array", "integer", []),
        ('new String[]{"a", "b"}', "Array", "String", ['"a"', '"b"']),
        ("new long[]{1L, 2, 3L}", "Array", "long", [1, "2", 3]),
        ('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String", ["a", "b"]),
        ("new ArrayList<>(Arrays.asList(a, b))", "ArrayList", "String", ["", ""]),
        ("new ArrayList<Integer>(Arrays.asList(1, 2))", "ArrayList", "integer", [1, 2]),
        ("new ArrayList<Long>() {{ add(1L); add(2L); }}", "ArrayList", "long", [1, 2]),
        ("new ArrayList<>()", "ArrayList", "String", []),
        ('new ArrayList<>(Arrays.asList("x", 42, true))', "ArrayList", "any", ['"x"', "42", "true"]),
        ("myList", "ArrayList", "String", "myList"),
        (
            'new HashMap<String, Object>() {{ put("a", 1); put("b", "x"); put("c", true); }}',
            "HashMap",
            None,
            {"a": 1, "b": "x", "c": True},
        ),
        ("new HashMap<>()", "HashMap", None, {}),
        ("new HashMap<>() {{ }}", "HashMap", None, {}),
        ("configMap", "HashMap", None, "configMap"),
    ],
)
def test_java_values(text: str, declared: str, nested: str | None, expected: Any) -> None:
    value = java_value(text, declared, nested)
    assert value == expected
    assert type(value) is type(expected)


def test_java_unsupported_types_raise() -> None:
    with pytest.raises(UnsupportedTypeError, match="'Set'"):
        java_value("new HashSet<>()", "Set")
    with pytest.raises(UnsupportedTypeError, match="'Object'"):
        java_value("x", "Object")


@pytest.mark.parametrize(
    ("text", "declared", "nested", "expected"),
    [
        ('"hi"', "String", None, "hi"),
        ("'hi'", "String", None, "hi"),
        ("hi", "String", None, "hi"),
        ("12", "integer", None, 12),
        ("12.0", "integer", None, "12.0"),
        ("3", "float", None, 3.0),
        ("-0.25", "float", None, -0.25),
        ("1e-5", "float", None, "1e-5"),  # no exponent form in the published pattern
        ("99n", "Bigint", None, 99),
        ("99", "Bigint", None, "99"),
        ("true", "Boolean", None, True),
        ("obj", "any", None, "obj"),
        ("[1, 2, 3]", "array", "integer", [1, 2, 3]),
        ('["a", "b"]', "array", "String", ["a", "b"]),
        ("new Array(1.5, 2)", "array", "float", [1.5, 2.0]),
        ("[]", "array", "String", []),
        ('["a, b", "c"]', "array", "String", ['"a', 'b"', "c"]),  # split on every comma
        ("[[1, 2], [3, 4]]", "array", "array", [[1, 2], [3, 4]]),
        ("myArray", "array", "String", "myArray"),
        ("{}", "dict", None, {}),
        ("{'key': 'value'}", "dict", None, {"key": "value"}),
        ('{"n": 5, "ok": true, "tags": ["a", "b"]}', "dict", None, {"n": 5, "ok": True, "tags": ["a", "b"]}),
        ("{a: 1, b: '2'}", "dict", None, {"a": 1, "b": 2}),  # quotes are stripped before the number test
        ("settingsObject", "dict", None, "settingsObject"),
    ],
)
def test_javascript_values(text: str, declared: str, nested: str | None, expected: Any) -> None:
    value = js_value(text, declared, nested)
    assert value == expected
    assert type(value) is type(expected)


def test_javascript_nested_object_is_cut_at_its_first_closing_brace() -> None:
    value = js_value('{"outer": {"inner": 1}, "after": 2}', "dict")
    assert value == {"outer": '{"inner": 1'}
