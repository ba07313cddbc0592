"""Decoding model results: call lists (incl. function-calling JSON arguments) and raw strings."""

from __future__ import annotations

from typing import Any

import pytest

from mor.evals.bfcl import Language, ParseError, has_call, parse_output


def test_call_lists_pass_through() -> None:
    calls = [{"f": {"x": 1}}, {"g.h": {"s": "a", "l": [1, 2]}}]
    assert parse_output(calls) == calls


def test_function_calling_arguments_given_as_json_strings() -> None:
    assert parse_output([{"f": '{"x": 1, "y": [true, null]}'}]) == [{"f": {"x": 1, "y": [True, None]}}]
    with pytest.raises(ParseError, match=r"result\[0\]: arguments are not JSON"):
        parse_output([{"f": "{x: 1}"}])


def test_openai_tool_call_objects() -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 2}'}}
    assert parse_output([tool_call]) == [{"f": {"x": 2}}]
    assert parse_output([{"name": "g", "arguments": {"y": "z"}}]) == [{"g": {"y": "z"}}]


@pytest.mark.parametrize(
    "bad",
    [
        [{"f": {"x": 1}, "g": {}}],  # two names in one call
        [{"f": [1, 2]}],  # arguments not an object
        ["f(x=1)"],  # a list of strings
        {"f": {"x": 1}},  # not a list
        None,
        42,
    ],
)
def test_other_shapes_are_unparseable(bad: object) -> None:
    with pytest.raises(ParseError):
        parse_output(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[f(x=1, y='a')]", [{"f": {"x": 1, "y": "a"}}]),
        ("f(x=1)", [{"f": {"x": 1}}]),
        ("```\n[f(x=1)]\n```", [{"f": {"x": 1}}]),
        ("[math.hypot(x=3, y=4.5), a.b.c(z=None)]", [{"math.hypot": {"x": 3, "y": 4.5}}, {"a.b.c": {"z": None}}]),
        ("[f(xs=[1, -2], d={'k': (1, 2)}, flag=True)]", [{"f": {"xs": [1, -2], "d": {"k": (1, 2)}, "flag": True}}]),
        ("[f(n=2**10, m=3*60)]", [{"f": {"n": 1024, "m": 180}}]),
        ("[f(v=some_variable, e=..., s=a[1:2])]", [{"f": {"v": "some_variable", "e": "...", "s": "a[1:2]"}}]),
        ("[f(call=g(1), nested=g(k=2))]", [{"f": {"call": "g(1)", "nested": {"g": {"k": 2}}}}]),
        ("[f(1, 2, x=3)]", [{"f": {"x": 3}}]),  # positional arguments are dropped
        ("[f(x=+5)]", [{"f": {"x": -5}}]),  # the published decoder negates every unary operand
        ("[]", []),
    ],
)
def test_python_call_strings(text: str, expected: list[dict[str, Any]]) -> None:
    assert parse_output(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I cannot help with that.",
        "[f(x=1), 'text']",
        "[f(x=lambda y: y)]",
        "[f(x=math.pi)]",
        "[f(x=1]",
        "```python\n[f(x=1)]\n```",  # the language tag survives the backtick strip and breaks the syntax
        "[f(**kwargs)]",
        "[f(x=-None)]",
        "[f(x='a' * 100000000)]",
        "[f(x=2 ** 100000)]",
        "[f(x=((2 ** 1000) ** 1000) ** 1000)]",
    ],
)
def test_python_strings_that_do_not_decode(text: str) -> None:
    with pytest.raises(ParseError):
        parse_output(text)


def test_java_call_strings() -> None:
    text = "[Foo.bar(name=\"Ann\", count=5L, items=new int[]{1, 2}, flag=true, c='x')]"
    assert parse_output(text, Language.JAVA) == [
        {"Foo.bar": {"name": "Ann", "count": "5L", "items": "new int[]{1, 2}", "flag": "true", "c": "x"}}
    ]
    # An anonymous class body is dropped by the published decoder (double-brace initialisation is lost).
    text = '[m(map=new HashMap<String, Object>() {{ put("a", 1); }})]'
    assert parse_output(text, Language.JAVA) == [{"m": {"map": "new HashMap<String, Object>()"}}]


def test_javascript_call_strings() -> None:
    text = "[chart.render(data=[1, 2], opts={a: 1}, title='T', cb=(x) => x, big=10n)]"
    assert parse_output(text, Language.JAVASCRIPT) == [
        {"chart.render": {"data": "[1, 2]", "opts": "{a: 1}", "title": "T", "cb": "(x) => x", "big": "10n"}}
    ]


@pytest.mark.parametrize("language", [Language.JAVA, Language.JAVASCRIPT])
@pytest.mark.parametrize("text", ["[f(x=1), g(y=2)]", "no call here", "[f(x=(1]", "[f(x=1, x=2)]", "[f(s='open)]"])
def test_source_strings_that_do_not_decode(language: Language, text: str) -> None:
    with pytest.raises(ParseError):
        parse_output(text, language)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ([{"f": {}}], True),
        ("[f(x=1)]", True),
        ([], False),
        ([{}], False),
        ("[]", False),
        ("The weather is nice.", False),
        ([{"f": {}, "g": {}}], False),  # not in call format: no call
    ],
)
def test_has_call(output: object, expected: bool) -> None:
    assert has_call(output) is expected
