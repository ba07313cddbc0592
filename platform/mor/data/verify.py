"""Verification of training trajectories: every call checked against the trajectory's candidate tools, and the
turns checked for structure, so that a record teaching a wrong call is dropped with its reasons.

`verify(trajectory)` lists a trajectory's problems; `verify_all(trajectories)` splits a corpus into kept and dropped
(each dropped trajectory with all its problems) and counts problems per code for the report. Pure and fast: no
dependency beyond the trajectory schema, no regular expression, schemas checked by a small hand-written validator.

Codes (`CODES`) and their exact rules; `turn` is the index in `trajectory.turns`, parameters are named by their path
(`arguments.items[2].price`):

* `unknown_function`: a call's name is not among the trajectory's tools.
* `missing_required`: a name of a `required` list is absent from the arguments (or from a nested object).
* `unknown_parameter`: an argument not among `properties`, when the schema lists at least one property and does
  not allow others (`additionalProperties` absent or false; when it is a schema, extra values are checked against
  it). An empty or absent `properties` lists nothing, so it never makes an argument unknown.
* `wrong_type`: a value that is not of the schema's `type` (a name or a list of names, any may match): `string`;
  `integer` (an int, or a float with no fraction such as `2.0`, as JSON Schema defines it; never a bool); `number`
  (an int or a float, never a bool); `boolean`; `null`; `array` (and each item against `items`: one schema for all,
  or a list of schemas by position); `object` (and its own `properties`, `required`, `additionalProperties`).
  `nullable: true` (OpenAPI) admits null. A type name outside JSON Schema's is not checked, nor is a value under a
  schema without `type`. `anyOf`/`oneOf` pass when one branch passes, `allOf` when all do.
* `not_in_enum`: a value (of the right type) equal to no member of `enum` (JSON equality: `1 == 1.0`, `true != 1`).
* `wrong_parameter_count`: what the schema implies about the number of arguments that the other rules cannot see:
  arguments given to a function whose schema has `properties: {}` (it takes none) and no `additionalProperties`,
  and a count outside `minProperties`/`maxProperties`. More arguments than properties is not a rule of its own:
  with unique argument names, at least one of them is then an `unknown_parameter`.
* `call_not_in_thought`: the reasoner's thought handing over to an executor turn names candidate functions, and
  none of the executor turn's calls is one it names. Conservative by design:
  - only a thought that exists and names a candidate can flag: a name counts as *named* when it occurs in the
    thought as a whole word (not inside a longer identifier) with its exact spelling, and only a distinctive name
    does (one holding `_`, `.`, `-`, a digit or an inner capital: `get_weather`, `getWeather`), since a plain word
    such as `search` is as likely prose as a function;
  - a call passes when its name occurs as a whole word in any case, or written as words (`get_weather`,
    `getWeather` → "get weather");
  - a turn with parallel calls passes when any of them is named (a thought seldom names every call);
  - a call that is not a candidate is an `unknown_function`, not also this;
  - a thought that names a function only to avoid it ("instead of search_for_seo_api") and calls one it does not
    name is flagged: the rule cannot read negation (ignore the code to keep such records).
* `orphan_observation`: an observation whose `call_id` is the id of no call before it, or, without a `call_id`, one
  that follows no unanswered call (an observation without `call_id` answers the earliest unanswered call).
* `unanswered_call`: a call that no observation answers although the trajectory goes on after it (a turn other
  than an observation follows its executor turn); not checked when `metadata.missing` lists `observation` (the
  format had no results).

When `metadata.missing` lists `tools` (calls but no tool list), the candidates are unknown and the call rules
(all but the last two) are skipped.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from mor.data.schema import Tool, ToolCall, Trajectory, Turn

__all__ = ["CODES", "Dropped", "Problem", "Verification", "verify", "verify_all"]

CODES: tuple[str, ...] = (
    "unknown_function",
    "missing_required",
    "unknown_parameter",
    "wrong_type",
    "not_in_enum",
    "wrong_parameter_count",
    "call_not_in_thought",
    "orphan_observation",
    "unanswered_call",
)
"""Every problem code, in the order the module docstring defines them."""

_JSON_TYPES = frozenset(("string", "integer", "number", "boolean", "null", "array", "object"))
_SHOWN_CHARS = 60  # of a value quoted in a reason
_LISTED = 5  # names listed in a reason


@dataclass(frozen=True)
class Problem:
    """One broken rule: its stable `code`, the `turn` index, the call and parameter concerned (when one is), and a
    `reason` naming them all."""

    code: str
    turn: int
    reason: str
    call: str | None = None  # the called function's name
    parameter: str | None = None  # the argument's path, e.g. "arguments.items[2].price"

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Dropped:
    """A trajectory that failed verification, with every problem found."""

    trajectory: Trajectory
    problems: tuple[Problem, ...]

    @property
    def codes(self) -> list[str]:
        """The distinct codes of its problems, in `CODES` order."""
        found = {problem.code for problem in self.problems}
        return [code for code in CODES if code in found]


class Verification(NamedTuple):
    """The kept and the dropped trajectories of `verify_all` (unpacks as `kept, dropped`)."""

    kept: list[Trajectory]
    dropped: list[Dropped]

    def problem_counts(self) -> dict[str, int]:
        """Problems found per code (a trajectory may have several of one code), in `CODES` order."""
        counts = Counter(problem.code for item in self.dropped for problem in item.problems)
        return {code: counts[code] for code in CODES if counts[code]}

    def trajectory_counts(self) -> dict[str, int]:
        """Dropped trajectories per code they trip (one trajectory counts under each of its codes)."""
        counts = Counter(code for item in self.dropped for code in item.codes)
        return {code: counts[code] for code in CODES if counts[code]}

    def report(self) -> dict[str, Any]:
        """Counts for a report: kept, dropped, and per code the problems and the trajectories they drop."""
        return {
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "problems": self.problem_counts(),
            "trajectories": self.trajectory_counts(),
        }


def verify(trajectory: Trajectory, *, ignore: Collection[str] = ()) -> list[Problem]:
    """Every problem of `trajectory` (rules in the module docstring), in turn order; codes in `ignore` are not
    reported. Raises `ValueError` for a code of `ignore` that is not in `CODES`."""
    _check_codes(ignore)
    return _verify(trajectory, frozenset(ignore))


def _verify(trajectory: Trajectory, ignore: frozenset[str]) -> list[Problem]:
    problems: list[Problem] = []
    missing = _missing(trajectory)
    if "tools" not in missing:
        _check_calls(trajectory, problems)
    _check_structure(trajectory, problems, check_unanswered="observation" not in missing)
    problems.sort(key=lambda problem: problem.turn)  # stable: rule order within a turn
    if ignore:
        problems = [problem for problem in problems if problem.code not in ignore]
    return problems


def verify_all(trajectories: Iterable[Trajectory], *, ignore: Collection[str] = ()) -> Verification:
    """`trajectories` split into those without problems (kept, in order) and the others (dropped, in order, each
    with all its problems); codes in `ignore` neither drop nor count."""
    _check_codes(ignore)
    ignored = frozenset(ignore)
    kept: list[Trajectory] = []
    dropped: list[Dropped] = []
    for trajectory in trajectories:
        problems = _verify(trajectory, ignored)
        if problems:
            dropped.append(Dropped(trajectory, tuple(problems)))
        else:
            kept.append(trajectory)
    return Verification(kept, dropped)


def _check_codes(codes: Collection[str]) -> None:
    unknown = sorted(set(codes) - set(CODES))
    if unknown:
        raise ValueError(f"ignore: unknown code(s) {unknown}; known codes: {', '.join(CODES)}")


def _missing(trajectory: Trajectory) -> list[str]:
    missing = (trajectory.metadata.model_extra or {}).get("missing")
    return list(missing) if isinstance(missing, list | tuple) else []


# ---- calls against the candidate tools and the thought ------------------------------------------------------------


def _check_calls(trajectory: Trajectory, problems: list[Problem]) -> None:
    tools = {tool.name: tool for tool in trajectory.tools}
    distinctive = [name for name in tools if _is_distinctive(name)]
    thought: str | None = None  # the thought handing over to the next acting turn
    hand_over: str | None = None  # the role it hands over to
    for index, turn in enumerate(trajectory.turns):
        if turn.next_role is not None:
            thought, hand_over = turn.thought, turn.next_role
            continue
        if not turn.calls:
            continue
        for call in turn.calls:
            tool = tools.get(call.name)
            if tool is None:
                problems.append(_unknown_function(index, turn, call, tools))
            else:
                _check_arguments(index, turn, call, tool, problems)
        if thought and hand_over == turn.role:
            _check_thought(index, turn, thought, tools, distinctive, problems)
        thought = hand_over = None


def _where(index: int, turn: Turn, call: ToolCall) -> str:
    return f"turn {index} ({turn.role}): call {call.name}" + (f" ({call.id})" if call.id else "")


def _unknown_function(index: int, turn: Turn, call: ToolCall, tools: Mapping[str, Tool]) -> Problem:
    if tools:
        names = list(tools)
        offered = ", ".join(names[:_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > _LISTED else "")
        close = difflib.get_close_matches(call.name, names, n=1)
        hint = f"; closest candidate: {close[0]}" if close else ""
        rule = f"not among the candidate tools ({offered}){hint}"
    else:
        rule = "the trajectory offers no tools"
    return Problem("unknown_function", index, f"{_where(index, turn, call)}: {rule}", call=call.name)


def _check_arguments(index: int, turn: Turn, call: ToolCall, tool: Tool, problems: list[Problem]) -> None:
    found: list[tuple[str, str, str]] = []
    schema = tool.parameters
    _check_object(call.arguments, schema, "arguments", found)
    properties = schema.get("properties")
    count = len(call.arguments)
    if isinstance(properties, Mapping) and not properties and not schema.get("additionalProperties") and count:
        found.append(
            (
                "wrong_parameter_count",
                "arguments",
                f"{tool.name} takes no arguments (its schema has no properties), got {count}: "
                f"{', '.join(call.arguments)}",
            )
        )
    for keyword, fails, bound in (
        ("minProperties", count.__lt__, "at least"),
        ("maxProperties", count.__gt__, "at most"),
    ):
        limit = schema.get(keyword)
        if isinstance(limit, int) and not isinstance(limit, bool) and fails(limit):
            found.append(
                ("wrong_parameter_count", "arguments", f"got {count} arguments, {keyword} asks for {bound} {limit}")
            )
    where = _where(index, turn, call)
    for code, path, message in found:
        problems.append(Problem(code, index, f"{where}: {path}: {message}", call=call.name, parameter=path))


def _check_thought(
    index: int,
    turn: Turn,
    thought: str,
    tools: Mapping[str, Tool],
    distinctive: list[str],
    problems: list[Problem],
) -> None:
    named = [name for name in distinctive if _mentions(thought, name)]
    if not named:
        return
    candidates = [call for call in turn.calls if call.name in tools]  # the others are unknown_function already
    lowered = thought.lower()
    if not candidates or any(call.name in named or _mentions_loosely(lowered, call.name) for call in turn.calls):
        return
    listed = ", ".join(named[:_LISTED]) + (", ..." if len(named) > _LISTED else "")
    for call in candidates:
        problems.append(
            Problem(
                "call_not_in_thought",
                index,
                f"{_where(index, turn, call)}: the thought before it names {listed} but not {call.name}",
                call=call.name,
            )
        )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _mentions(text: str, name: str) -> bool:
    """Whether `name` occurs in `text` as a whole word (no identifier character right before or after it)."""
    start = text.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or not _is_word_char(text[start - 1])) and (end == len(text) or not _is_word_char(text[end])):
            return True
        start = text.find(name, start + 1)
    return False


def _is_distinctive(name: str) -> bool:
    """A name unlikely to occur as prose: it holds `_`, `.`, `-`, a digit or a capital after its first letter."""
    return any(char in "_.-" or char.isdigit() for char in name) or any(char.isupper() for char in name[1:])


def _words(name: str) -> str:
    """`get_weather`, `getWeather`, `get-weather` → `get weather`."""
    out: list[str] = []
    previous = ""
    for char in name:
        if char in "_.- ":
            char = " "
        elif char.isupper() and previous.islower():
            out.append(" ")
        out.append(char.lower())
        previous = char
    return " ".join("".join(out).split())


def _mentions_loosely(lowered_text: str, name: str) -> bool:
    """Whether a lower-cased text names `name` in any case, or written as words."""
    lowered = name.lower()
    if _mentions(lowered_text, lowered):
        return True
    words = _words(name)
    return words != lowered and _mentions(lowered_text, words)


# ---- the small JSON Schema validator ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "array":
        return isinstance(value, list | tuple)
    if name == "object":
        return isinstance(value, Mapping)
    return True  # not a JSON Schema type name: not checked


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value (`1 == 1.0`), but a boolean equals only a boolean."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[key], right[key]) for key in left)
    return bool(left == right)


def _check_value(value: Any, schema: Any, path: str, found: list[tuple[str, str, str]]) -> None:
    """Append `(code, path, message)` for every way `value` breaks `schema`."""
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    names = [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else []
    if names and all(name in _JSON_TYPES for name in names):
        if not any(_is_type(value, name) for name in names) and not (value is None and schema.get("nullable")):
            expected = " or ".join(names)
            found.append(("wrong_type", path, f"got {_type_name(value)} {_show(value)}, expected {expected}"))
            return
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_json_equal(value, member) for member in enum):
        found.append(("not_in_enum", path, f"got {_show(value)}, expected one of {_show(enum)}"))
        return
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            attempts = []
            for branch in branches:
                attempt: list[tuple[str, str, str]] = []
                _check_value(value, branch, path, attempt)
                if not attempt:
                    break
                attempts.append(attempt)
            else:
                # the branch it comes closest to: one of its type first, then the one with fewest problems
                found.extend(min(attempts, key=lambda attempt: (attempt[0][:2] == ("wrong_type", path), len(attempt))))
    branches = schema.get("allOf")
    if isinstance(branches, list):
        for branch in branches:
            _check_value(value, branch, path, found)
    if isinstance(value, list | tuple):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for position, item in enumerate(value):
                _check_value(item, items, f"{path}[{position}]", found)
        elif isinstance(items, list):
            for position, (item, item_schema) in enumerate(zip(value, items, strict=False)):
                _check_value(item, item_schema, f"{path}[{position}]", found)
    elif isinstance(value, Mapping):
        _check_object(value, schema, path, found)


def _check_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], path: str, found: list[tuple[str, str, str]]
) -> None:
    """An object's required names, unknown names and each property's value."""
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    for name in required if isinstance(required, list) else ():
        if isinstance(name, str) and name not in value:
            found.append(("missing_required", f"{path}.{name}", "required, not given"))
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            _check_value(item, properties[name], where, found)
        elif isinstance(extra, Mapping):
            _check_value(item, extra, where, found)
        elif properties and not extra:
            listed = ", ".join(list(properties)[:_LISTED]) + (", ..." if len(properties) > _LISTED else "")
            close = difflib.get_close_matches(str(name), list(properties), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            found.append(("unknown_parameter", where, f"not a parameter of the schema ({listed}){hint}"))


# ---- structure: calls and their observations ----------------------------------------------------------------------


def _check_structure(trajectory: Trajectory, problems: list[Problem], *, check_unanswered: bool) -> None:
    turns = trajectory.turns
    known: set[str] = set()  # ids of the calls so far
    unanswered: list[tuple[int, ToolCall]] = []  # (turn index, call), in call order
    for index, turn in enumerate(turns):
        if turn.calls:
            for call in turn.calls:
                if call.id is not None:
                    known.add(call.id)
                unanswered.append((index, call))
        elif turn.role == "observation":
            if turn.call_id is not None:
                if turn.call_id not in known:
                    problems.append(
                        Problem(
                            "orphan_observation",
                            index,
                            f"turn {index} (observation): call_id {turn.call_id!r} answers no call before it",
                        )
                    )
                else:
                    unanswered = [(at, call) for at, call in unanswered if call.id != turn.call_id]
            elif unanswered:
                unanswered.pop(0)
            else:
                problems.append(
                    Problem(
                        "orphan_observation",
                        index,
                        f"turn {index} (observation): no call_id and no unanswered call before it",
                    )
                )
    if not check_unanswered:
        return
    for at, call in unanswered:
        later = next((n for n in range(at + 1, len(turns)) if turns[n].role != "observation"), None)
        if later is not None:
            problems.append(
                Problem(
                    "unanswered_call",
                    at,
                    f"{_where(at, turns[at], call)}: no observation answers it, yet the trajectory goes on "
                    f"(turn {later}, {turns[later].role})",
                    call=call.name,
                )
            )
