"""Java and JavaScript values, given as source-text strings, turned into Python values as BFCL's rules do.

For the java and javascript categories a model gives every argument as a string holding source code
("new int[]{1, 2}", "5L", "[1, 2]", "{a: 1}"); the published checker converts it with the regular expressions
restated here before type and value checks. The conversions are deliberately loose and keep their quirks
(noted where they bite), because a value that falls through stays a string and then usually fails the type
check, exactly as on the leaderboard. A value the rules cannot parse is returned unchanged, never an error.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "JAVA_TYPES",
    "JS_TYPES",
    "NESTED_TYPES",
    "UnsupportedTypeError",
    "java_value",
    "js_value",
]

# Declared parameter type -> Python type the converted value must have.
JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "float": float,
    "double": float,
    "long": int,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
    "Queue": list,
    "Stack": list,
    "String": str,
    "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}
# Types whose declared `items.type` is converted (and type-checked) element by element.
NESTED_TYPES: frozenset[str] = frozenset({"Array", "ArrayList", "array"})

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_F_SUFFIX = re.compile(r"[fF]$")
_L_SUFFIX = re.compile(r"[lL]$")
# Upstream's char pattern puts `$` before the closing quote, so it can never match: a char value always
# stays the string the model wrote (quotes included).
_JAVA_CHAR = re.compile(r"^\'.$\'")
_ARRAYLIST_ASLIST = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)")
_ARRAYLIST_ADDS = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", re.DOTALL)
_ARRAYLIST_ADD = re.compile(r"add\((.+?)\)")
_ARRAYLIST_EMPTY = re.compile(r"new\s+ArrayList<\w*>\(\)")
_JAVA_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{(.*?)\}")
_HASHMAP = re.compile(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", re.DOTALL)
_HASHMAP_PUT = re.compile(r"put\(\"(.*?)\",\s*(.*?)\)")
_HASHMAP_EMPTY = re.compile(r"new\s+HashMap<.*?>\s*\(\)")

_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY_2D = re.compile(r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)")
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_JS_INNER_ARRAY = re.compile(r"\[(.*?)\]")
_JS_DICT = re.compile(r"\{(.*?)\}")
_JS_PAIR = re.compile(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)")


class UnsupportedTypeError(ValueError):
    """A declared parameter type the published converters do not handle (Set, Hashtable, Queue, Stack, ...)."""


# ---------------------------------------------------------------- Java


def java_value(value: str, declared: str, nested: str | None = None) -> Any:
    """Convert the Java source text `value` of a parameter declared `declared` (items `nested`)."""
    if declared not in JAVA_TYPES:
        raise UnsupportedTypeError(f"Java type {declared!r} is not one the BFCL rules convert")
    if declared in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else value
    if declared == "float":
        return float(_F_SUFFIX.sub("", value)) if _JAVA_FLOAT.match(value) else value
    if declared == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else value
    if declared == "long":
        return int(_L_SUFFIX.sub("", value)) if _JAVA_LONG.match(value) else value
    if declared == "boolean":
        return value == "true" if value in ("true", "false") else value
    if declared == "char":
        return value  # see _JAVA_CHAR: the published pattern never matches
    if declared == "ArrayList":
        return _java_arraylist(value, nested)
    if declared == "Array":
        return _java_array(value, nested)
    if declared == "HashMap":
        return _java_hashmap(value)
    if declared in ("String", "any"):
        return str(value)
    raise UnsupportedTypeError(f"Java type {declared!r} has no conversion in the BFCL rules")


def _java_element(text: str, nested: str | None) -> Any:
    # In an ArrayList, String and char elements lose their first and last character (the quotes) whatever
    # they are, so an unquoted identifier loses letters.
    if nested in ("char", "String"):
        return text[1:-1]
    return java_value(text, nested) if nested else _java_literal(text)


def _java_arraylist(value: str, nested: str | None) -> Any:
    match = _ARRAYLIST_ASLIST.search(value)
    if match:
        return [_java_element(part.strip(), nested) for part in match.group(1).split(",")]
    match = _ARRAYLIST_ADDS.search(value)
    if match:
        return [_java_element(add.strip(), nested) for add in _ARRAYLIST_ADD.findall(match.group(1))]
    if _ARRAYLIST_EMPTY.search(value):
        return []
    return value


def _java_array(value: str, nested: str | None) -> Any:
    match = _JAVA_ARRAY.search(value)
    if not match:
        return value
    parts = [part.strip() for part in match.group(1).split(",") if part.strip()]
    # Unlike ArrayList, array elements go through the scalar conversion, and String keeps its quotes:
    # `new String[]{"a"}` gives ['"a"'], which never equals the ground truth's "a".
    return [java_value(part, nested) if nested else _java_literal(part) for part in parts]


def _java_hashmap(value: str) -> Any:
    match = _HASHMAP.search(value)
    if match:
        body = match.group(1)
        return {key: _java_literal(raw.strip()) for key, raw in _HASHMAP_PUT.findall(body)} if body.strip() else {}
    if _HASHMAP_EMPTY.search(value):
        return {}
    return value


def _java_literal(text: str) -> Any:
    """A Java literal whose type is not declared: boolean, string, long, float, int, double, else the text."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(_F_SUFFIX.sub("", text))
    return _number_or_text(text)


# ---------------------------------------------------------------- JavaScript


def js_value(value: str, declared: str, nested: str | None = None) -> Any:
    """Convert the JavaScript source text `value` of a parameter declared `declared` (items `nested`)."""
    if declared not in JS_TYPES:
        raise UnsupportedTypeError(f"JavaScript type {declared!r} is not one the BFCL rules convert")
    if declared == "String":
        quoted = (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'"))
        return value[1:-1] if quoted else str(value)
    if declared == "integer":
        return int(value) if _INT.match(value) else value
    if declared == "float":
        return float(value) if _JS_FLOAT.match(value) else value  # no exponent form: "1e-5" stays a string
    if declared == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else value
    if declared == "Boolean":
        return value == "true" if value in ("true", "false") else value
    if declared == "dict":
        return _js_dict(value.strip())
    if declared == "array":
        return _js_array(value.strip(), nested)
    return str(value)  # any


def _js_array(code: str, nested: str | None) -> Any:
    try:
        match = _JS_ARRAY_2D.match(code)
        if match:
            rows = []
            for index, inner in enumerate(_JS_INNER_ARRAY.findall(match.group(0))):
                inner = inner.strip()
                if index == 0 and inner.startswith("["):
                    inner = inner[1:]
                # Elements of nested arrays are parsed untyped, whatever `nested` says.
                rows.append([_js_literal(part.strip()) for part in inner.split(",")])
            return rows
        match = _JS_ARRAY.match(code)
        if not match:
            return code
        body = match.group(1) if match.group(1) is not None else match.group(2)
        body = (body or "").strip()
        # Elements are split on every comma, so a string element holding a comma falls apart.
        parts = body.split(",") if body else []
        if nested:
            return [_js_nested(part.strip(), nested) for part in parts]
        return [_js_literal(part.strip()) for part in parts]
    except (ValueError, UnsupportedTypeError):
        return code


def _js_nested(text: str, nested: str) -> Any:
    return js_value(text, nested, "String" if text.startswith(("'", '"')) else None)


def _js_dict(code: str) -> Any:
    if code == "{}":
        return {}
    match = _JS_DICT.match(code)  # non-greedy: a nested object ends the match at its first "}"
    if not match:
        return code
    result: dict[str, Any] = {}
    for raw_key, raw_value in _JS_PAIR.findall(match.group(1)):
        key = raw_key.strip().strip("'\"")
        text = raw_value.strip()
        if text.startswith("[") and text.endswith("]"):
            result[key] = _js_array(text, None)
        elif text.startswith("{") and text.endswith("}"):
            result[key] = _js_dict(text)
        else:
            result[key] = _js_literal(text.strip("'\""))
    return result


def _js_literal(text: str) -> Any:
    """A JavaScript literal whose type is not declared: boolean, quoted string, int, float, else the text."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if (text.startswith('"') and text.endswith('"')) or (text.startswith("'") and text.endswith("'")):
        return text[1:-1]
    return _number_or_text(text)


def _number_or_text(text: str) -> Any:
    # Python's own int()/float() decide, as upstream: "1_000" is an int and "nan" a float.
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
