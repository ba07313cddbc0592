"""Reader of the original ToolACE format (Team-ACE/ToolACE on Hugging Face), and a parser of its call syntax.

A record (the files are a JSON array of them, or JSON lines)::

    {"system": "You are an expert in composing functions. ... Here is a list of functions in JSON format that you
                can invoke:\\n[{\\"name\\": \\"Market Trends API\\", \\"parameters\\": {\\"type\\": \\"dict\\", ...}},
                ...]. \\nShould you decide to return the function call(s). ...",
     "conversations": [
        {"from": "user", "value": "What are the top gainers today?"},
        {"from": "assistant", "value": "[Market Trends API(trend_type=\\"GAINERS\\"), Other(x=[1, 2])]"},
        {"from": "tool", "value": "[{\\"name\\": \\"Market Trends API\\", \\"results\\": {...}}, {...}]"},
        {"from": "assistant", "value": "Today's top gainers are ..."}]}

Mapping onto the unified trajectory (conventions in `mor.data.readers.base`):

* the tools are the JSON list in the system prompt (parameters normalised to JSON Schema, `dict` → `object`);
* the system prompt is a `system` turn (by default without the tool list, which the renderer lists itself);
* `user` → a `user` turn;
* an `assistant` call list `[Name(arg=value, ...), ...]` → a reasoner turn handing over to the executor (no
  thought: ToolACE has none) and an executor turn with the calls, `call_<n>` numbered over the trajectory;
* a `tool` message (a list of `{"name", "results"}` in call order) → one `observation` turn per result, answering
  the awaiting calls in order (a result naming another awaiting call answers that one);
* any other `assistant` message (an answer or a clarifying question) → a reasoner turn handing over to the
  summarizer and a `summarizer` turn.

`metadata.missing` is `["thought"]`, plus `"observation"` and `"answer"` when the record ends on calls without
results (many ToolACE dialogues end on the call to learn).
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from mor.data.readers.base import Malformed, error_reason, expand_paths, iter_json_records, parse_tools, record_id
from mor.data.schema import ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["SOURCE", "CallSyntaxError", "SystemPrompt", "parse_call_list", "read_toolace"]

SOURCE = "toolace"

SystemPrompt = Literal["without_tools", "keep", "drop"]
"""What becomes of the system prompt: kept without its JSON tool list (the renderer lists the tools itself), kept
whole, or dropped."""


def read_toolace(
    path: str | Path, *, system_prompt: SystemPrompt = "without_tools"
) -> Iterator[Trajectory | Malformed]:
    """Every record of the ToolACE files at `path` (a file, a directory or a glob) as a trajectory, or a
    `Malformed` report naming the record and the reason. Raises `ValueError` for an unknown `system_prompt`."""
    if system_prompt not in get_args(SystemPrompt):
        raise ValueError(
            f"system_prompt: got {system_prompt!r}, must be one of {list(get_args(SystemPrompt))}; "
            "e.g. system_prompt='without_tools'"
        )
    return _read(path, system_prompt)


def _read(path: str | Path, system_prompt: SystemPrompt) -> Iterator[Trajectory | Malformed]:
    for file in expand_paths(path):
        for position, record in iter_json_records(file):
            if isinstance(record, ValueError):
                yield Malformed(SOURCE, str(file), position, str(record))
                continue
            try:
                yield _trajectory(record, file, position, system_prompt)
            except (ValueError, RecursionError) as error:
                yield Malformed(SOURCE, str(file), position, error_reason(error))
            except (TypeError, KeyError, AttributeError) as error:  # a shape no check foresaw: report, go on
                reason = f"unexpected record shape: {type(error).__name__}: {error}"
                yield Malformed(SOURCE, str(file), position, reason)


# -- records ----------------------------------------------------------------------------------------------------------


def _trajectory(record: Any, file: Path, position: str, system_prompt: SystemPrompt) -> Trajectory:
    if not isinstance(record, dict):
        raise ValueError(f"expected an object with 'system' and 'conversations', got {type(record).__name__}")
    system = record.get("system")
    if not isinstance(system, str):
        raise ValueError("system: missing or not a string (ToolACE lists the tools in the system prompt)")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("conversations: missing, empty or not a list of {'from': ..., 'value': ...}")

    listed, (start, end) = _tool_list(system)
    tools = parse_tools(listed)
    names = {tool.name for tool in tools}

    turns: list[Turn] = []
    prompt = {"keep": system, "without_tools": system[:start] + system[end:], "drop": ""}[system_prompt]
    if prompt.strip():
        turns.append(Turn(role="system", content=prompt))

    awaiting: list[ToolCall] = []  # calls without a result yet, in call order
    count = 0
    for index, message in enumerate(conversations):
        where = f"conversations[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where}: expected {{'from': ..., 'value': ...}}, got {type(message).__name__}")
        speaker, value = message.get("from"), message.get("value")
        if not isinstance(value, str):
            raise ValueError(f"{where}.value: expected a string, got {type(value).__name__}")
        if speaker not in ("user", "assistant", "tool"):
            raise ValueError(f"{where}.from: got {speaker!r}, expected 'user', 'assistant' or 'tool'")
        if speaker != "tool" and awaiting:
            raise ValueError(
                f"{where}: {awaiting[0].id} ({awaiting[0].name}) has no result before this {speaker} message"
            )
        if speaker == "user":
            turns.append(Turn(role="user", content=value))
        elif speaker == "assistant":
            if not value.strip():
                raise ValueError(f"{where}: an empty assistant message")
            if _looks_like_call_list(value):
                try:
                    parsed = parse_call_list(value, names)
                except CallSyntaxError as error:
                    raise ValueError(f"{where}: unparsable call list: {error}") from None
                calls = []
                for call in parsed:
                    count += 1
                    calls.append(call.model_copy(update={"id": f"call_{count}"}))
                turns += [Turn(role="reasoner", next_role="executor"), Turn(role="executor", calls=calls)]
                awaiting = list(calls)
            else:
                turns += [Turn(role="reasoner", next_role="summarizer"), Turn(role="summarizer", content=value)]
        else:
            if not awaiting:
                raise ValueError(f"{where}: a tool result, but no call awaits one")
            for name, content in _results(value, len(awaiting), where):
                call = next((c for c in awaiting if name is not None and c.name == name), awaiting[0])
                awaiting.remove(call)
                turns.append(Turn(role="observation", content=content, call_id=call.id))
    if not any(turn.role in ("executor", "summarizer") for turn in turns):
        raise ValueError("conversations: no assistant message (nothing to learn)")

    missing = ["thought"]
    if awaiting:
        missing.append("observation")
    if turns[-1].role != "summarizer":
        missing.append("answer")
    return Trajectory(
        id=record_id(SOURCE, file, position),
        tools=tools,
        turns=turns,
        metadata=TrajectoryMeta(source=SOURCE, origin=f"{file}:{position}", missing=missing),
    )


def _tool_list(system: str) -> tuple[list[Any], tuple[int, int]]:
    """The JSON list of functions in the system prompt and where it is: the list opening at the first `[` after
    "JSON format", else the first `[{...}]` that decodes to a list of objects with names."""
    decoder = json.JSONDecoder()
    anchor = system.lower().find("json format")
    first = system.find("[", anchor) if anchor >= 0 else -1
    starts = ([first] if first >= 0 else []) + [m.start() for m in re.finditer(r"\[\s*\{", system)]
    problem = ""
    for start in starts:
        try:
            value, end = decoder.raw_decode(system, start)
        except json.JSONDecodeError as error:
            problem = problem or f" (the list after 'JSON format' is not valid JSON: {error.msg})"
            continue
        if isinstance(value, list) and (
            start == first or (value and all(isinstance(e, dict) and "name" in e for e in value))
        ):
            return value, (start, end)
    raise ValueError(
        "system: no JSON list of functions found; expected one after 'Here is a list of functions in JSON format "
        f"that you can invoke:'{problem}"
    )


def _results(value: str, awaiting: int, where: str) -> list[tuple[str | None, str]]:
    """`(function name or None, observation content)` per result of a tool message."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        if awaiting == 1:
            return [(None, value)]  # a plain-text result of the one awaiting call
        raise ValueError(f"{where}: tool results are not JSON, and {awaiting} calls await results") from None
    entries = data if isinstance(data, list) else [data]
    if entries and all(isinstance(e, dict) and "results" in e for e in entries):
        if len(entries) > awaiting:
            raise ValueError(f"{where}: {len(entries)} tool results, but {awaiting} calls await results")
        return [(_name(e.get("name")), _content(e["results"])) for e in entries]
    if awaiting == 1:
        return [(None, value)]  # one result in a shape of its own
    raise ValueError(
        f"{where}: tool results: expected a list of {{'name': ..., 'results': ...}} (one per awaiting call, "
        f"{awaiting} await), got {value[:80]!r}"
    )


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _content(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


# -- call syntax ------------------------------------------------------------------------------------------------------


class CallSyntaxError(ValueError):
    """A call list that does not parse: what was expected and where."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.position = position
        near = text[max(0, position - 24) : position + 24]
        super().__init__(f"{reason} at character {position} (near {near!r})")


_CALL_LIST_START = re.compile(r"\s*\[\s*[^\s\[\]{}()=\"',][^\[\]{}=\"\n]*?\(")
_NAME_STOP = frozenset('[]{}="\n\r')  # what a function name never holds (it may hold spaces, dots, commas, parens)
_MAX_NAME = 256
_MAX_DEPTH = 64
_KEY = re.compile(r"[^\s=,()\[\]{}\"':]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_]\w*")
_WORDS: dict[str, Any] = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}
_AFTER_SCALAR = frozenset(" \t\r\n,)]}:")


def _looks_like_call_list(text: str) -> bool:
    """Whether an assistant message is meant as a call list: `[` then a function name and `(`."""
    return _CALL_LIST_START.match(text) is not None


def parse_call_list(text: str, tool_names: Collection[str] = ()) -> list[ToolCall]:
    """The calls of a ToolACE call list `[Name(arg=value, ...), Other Name(...)]` (ids unset); raises
    `CallSyntaxError`.

    Grammar (whitespace allowed between tokens)::

        calls     := "[" call ("," call)* ","? "]"
        call      := name "(" (argument ("," argument)* ","?)? ")"
        name      := any text without [ ] { } = " or a line break (spaces, dots, commas, slashes and
                     parentheses included, e.g. "User Feed (Video Posts) V2")
        argument  := key "=" value          key := a run without spaces, = , ( ) [ ] { } quotes or :
        value     := string | number | true | false | True | False | null | None | list | tuple | dict
        string    := '...' | "..." | '''...''' | \"\"\"...\"\"\" with JSON or Python escapes
        list      := "[" (value ("," value)* ","?)? "]"       tuple := "(" ... ")" (read as a list)
        dict      := "{" (value ":" value ("," value ":" value)* ","?)? "}"   (keys: strings or numbers)

    A name is tried at each `(` in turn (names in `tool_names` first) until its argument list parses and is
    followed by `,` or `]`, so a name's own parentheses are kept.
    """
    return _CallParser(text, frozenset(tool_names)).call_list()


class _CallParser:
    def __init__(self, text: str, tool_names: frozenset[str]) -> None:
        self.text = text
        self.pos = 0
        self.tool_names = tool_names
        self.depth = 0

    def error(self, reason: str, at: int | None = None) -> CallSyntaxError:
        return CallSyntaxError(reason, self.text, self.pos if at is None else at)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call_list(self) -> list[ToolCall]:
        self.skip_space()
        if self.peek() != "[":
            raise self.error("expected '[' to open the call list")
        self.pos += 1
        self.skip_space()
        if self.peek() == "]":
            raise self.error("an empty call list")
        calls = []
        while True:
            calls.append(self.call())
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
                if self.peek() == "]":
                    self.pos += 1
                    break
                continue
            self.pos += 1  # "]": call() checked what follows
            break
        self.skip_space()
        if self.pos != len(self.text):
            raise self.error("text after the call list")
        return calls

    def call(self) -> ToolCall:
        start = self.pos
        openings = []
        index = start
        while index < len(self.text) and index - start <= _MAX_NAME and self.text[index] not in _NAME_STOP:
            if self.text[index] == "(":
                openings.append(index)
            index += 1
        candidates = [(at, self.text[start:at].strip()) for at in openings]
        candidates = [(at, name) for at, name in candidates if name]
        if not candidates:
            raise self.error("expected a function name followed by '('")
        candidates.sort(key=lambda candidate: candidate[1] not in self.tool_names)  # stable: known names first
        farthest: CallSyntaxError | None = None
        for at, name in candidates:
            self.pos = at + 1
            try:
                arguments = self.arguments()
                self.skip_space()
                if self.peek() not in (",", "]"):
                    raise self.error(f"expected ',' or ']' after the call of {name!r}")
            except CallSyntaxError as error:
                if farthest is None or error.position > farthest.position:
                    farthest = error
                continue
            return ToolCall(name=name, arguments=arguments)
        assert farthest is not None
        raise farthest

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return arguments
        while True:
            self.skip_space()
            key = _KEY.match(self.text, self.pos)
            if key is None:
                raise self.error("expected an argument name (arguments are written name=value)")
            self.pos = key.end()
            self.skip_space()
            if self.peek() != "=":
                raise self.error(f"expected '=' after the argument name {key.group()!r}")
            self.pos += 1
            self.skip_space()
            value = self.value()
            if key.group() in arguments:
                raise self.error(f"argument {key.group()!r} given twice", at=key.start())
            arguments[key.group()] = value
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
                if self.peek() == ")":
                    self.pos += 1
                    return arguments
                continue
            if self.peek() == ")":
                self.pos += 1
                return arguments
            raise self.error("expected ',' or ')' after an argument value")

    def value(self) -> Any:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise self.error(f"values nested deeper than {_MAX_DEPTH}")
            char = self.peek()
            if char in ("'", '"'):
                return self.string()
            if char == "[":
                return self.sequence("]")
            if char == "(":
                return self.sequence(")")
            if char == "{":
                return self.mapping()
            number = _NUMBER.match(self.text, self.pos)
            if number is not None:
                return self.number(number)
            word = _WORD.match(self.text, self.pos)
            if word is not None:
                if word.group() not in _WORDS:
                    raise self.error(f"bare word {word.group()!r} is not a value (a string needs quotes)")
                self.pos = word.end()
                self.check_scalar_end()
                return _WORDS[word.group()]
            raise self.error("expected a value" if char else "unexpected end of the call list")
        finally:
            self.depth -= 1

    def check_scalar_end(self) -> None:
        if self.pos < len(self.text) and self.text[self.pos] not in _AFTER_SCALAR:
            raise self.error(f"unexpected {self.text[self.pos]!r} after a value")

    def number(self, match: re.Match[str]) -> int | float:
        text = match.group()
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            raise self.error(f"number {text!r} has a leading zero (a code or id needs quotes)")
        self.pos = match.end()
        self.check_scalar_end()
        if re.search(r"[.eE]", text):
            value = float(text)
            if not math.isfinite(value):
                raise self.error(f"number {text!r} is out of range", at=match.start())
            return value
        return int(text)

    def string(self) -> str:
        start = self.pos
        quote = self.text[start]
        closing = quote * 3 if self.text.startswith(quote * 3, start) else quote
        index = start + len(closing)
        while True:
            if index >= len(self.text):
                raise self.error("unterminated string", at=start)
            if self.text[index] == "\\":
                index += 2
                continue
            if self.text.startswith(closing, index):
                index += len(closing)
                break
            index += 1
        literal = self.text[start:index]
        self.pos = index
        if closing == '"':
            try:
                decoded = json.loads(literal, strict=False)  # JSON escapes; raw control characters allowed
            except json.JSONDecodeError:
                decoded = None
            if isinstance(decoded, str):
                self.check_scalar_end()
                return decoded
        if len(closing) == 1:  # a line break inside a one-line Python string: read it as written
            literal = literal.replace("\r", "\\r").replace("\n", "\\n")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes such as "\/" stay as written
                decoded = ast.literal_eval(literal)
        except (SyntaxError, ValueError):
            raise self.error("invalid string literal", at=start) from None
        self.check_scalar_end()
        return str(decoded)

    def sequence(self, closing: str) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        self.skip_space()
        if self.peek() == closing:
            self.pos += 1
            return items
        while True:
            self.skip_space()
            items.append(self.value())
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
                if self.peek() == closing:
                    self.pos += 1
                    return items
                continue
            if self.peek() == closing:
                self.pos += 1
                return items
            raise self.error(f"expected ',' or {closing!r} in a list")

    def mapping(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip_space()
        if self.peek() == "}":
            self.pos += 1
            return out
        while True:
            self.skip_space()
            at = self.pos
            key = self.value()
            if isinstance(key, bool) or key is None:
                key = json.dumps(key)
            elif isinstance(key, int | float):
                key = str(key)
            elif not isinstance(key, str):
                raise self.error("a dict key must be a string or a number", at=at)
            self.skip_space()
            if self.peek() != ":":
                raise self.error(f"expected ':' after the dict key {key!r}")
            self.pos += 1
            self.skip_space()
            out[key] = self.value()
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
                if self.peek() == "}":
                    self.pos += 1
                    return out
                continue
            if self.peek() == "}":
                self.pos += 1
                return out
            raise self.error("expected ',' or '}' in a dict")
