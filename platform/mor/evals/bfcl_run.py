"""Running a model under test over BFCL items: offer each item's functions as OpenAI tools, score the reply with
the BFCL checker, and, for role-gated (MoR) targets, name the role that caused a failure.

How a reply becomes the output the checker scores (the shape of the leaderboard's function-calling results):
its tool calls `[{name: arguments}]`; for a role that produced unusable output, that output as written (so the
checker reports it, usually as unparseable); for a plain model that answered in text, the text when it holds
calls in the prompting format `[f(a=1)]`; otherwise no call at all.

Function names are offered with "." replaced by "_" (OpenAI-style APIs forbid the dot), and scored with the
checker's `underscore_names`, as the leaderboard does for function-calling models. Java and JavaScript
parameters are offered as strings holding source text, which is what the checker expects for those languages.

A failed item whose reply held no call because a role's output was unusable fails as `unparseable` (not
`no_call`, which means the reasoner chose to answer instead of calling).

Failing role of a MoR target (None for other models and for passed items):
- the target reported a role whose output was unusable: that role;
- no call where one was needed, or a call where none was (irrelevance): the reasoner, which chose the wrong
  next role (summarizer instead of executor, or the reverse);
- wrong function, parameters, types, values or number of calls: the executor, which wrote the calls.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.evals.bfcl import (
    BfclItem,
    CategoryScore,
    FailureReason,
    ItemResult,
    Language,
    ParseError,
    load_items,
    parse_output,
    score_item,
    summarize,
)
from mor.evals.record import row_metrics
from mor.evals.target import ChatTarget, TargetReply
from mor.evals.targets import GateRoles, gate_roles_of
from mor.store import NewItemResult

__all__ = [
    "BfclCategoryRun",
    "BfclItemRun",
    "attribute_role",
    "bfcl_metrics",
    "bfcl_tools",
    "run_bfcl_category",
    "run_bfcl_item",
    "scored_output",
]

# BFCL parameter types -> JSON-schema types (python and the non-string java/javascript names).
_SCHEMA_TYPES: dict[str, str] = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "double": "number",
    "integer": "integer",
    "long": "integer",
    "byte": "integer",
    "short": "integer",
    "Bigint": "integer",
    "string": "string",
    "String": "string",
    "char": "string",
    "any": "string",
    "Any": "string",
    "boolean": "boolean",
    "Boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "list": "array",
    "Array": "array",
    "ArrayList": "array",
    "Queue": "array",
    "Stack": "array",
    "Set": "array",
    "HashMap": "object",
    "Hashtable": "object",
}
_SCHEMA_KEYS = ("description", "enum", "default", "format", "minimum", "maximum", "minItems", "maxItems")
_EXECUTOR_REASONS = frozenset(
    {
        FailureReason.WRONG_FUNCTION,
        FailureReason.MISSING_PARAMETER,
        FailureReason.UNEXPECTED_PARAMETER,
        FailureReason.WRONG_TYPE,
        FailureReason.WRONG_VALUE,
        FailureReason.WRONG_COUNT,
        FailureReason.UNPARSEABLE,
    }
)
_REASONER_REASONS = frozenset({FailureReason.NO_CALL, FailureReason.UNEXPECTED_CALL})
_MAX_RAW_CHARS = 4000
_LANGUAGE_NAMES = {Language.JAVA: "Java", Language.JAVASCRIPT: "JavaScript"}


# ---------------------------------------------------------------- tools offered


def _schema(node: Mapping[str, Any]) -> dict[str, Any]:
    declared = str(node.get("type", "string") or "string")
    out: dict[str, Any] = {"type": _SCHEMA_TYPES.get(declared, "string")}
    for key in _SCHEMA_KEYS:
        if key in node:
            out[key] = node[key]
    if out["type"] == "object" and isinstance(node.get("properties"), Mapping):
        out["properties"] = {name: _schema(child) for name, child in node["properties"].items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    if out["type"] == "array" and isinstance(node.get("items"), Mapping):
        out["items"] = _schema(node["items"])
    return out


def _source_text_parameter(node: Mapping[str, Any], language: Language) -> dict[str, Any]:
    declared = str(node.get("type", "any") or "any")
    note = f"Give this {_LANGUAGE_NAMES[language]} {declared} value as {_LANGUAGE_NAMES[language]} source text."
    items = node.get("items")
    if isinstance(items, Mapping) and items.get("type"):
        note += f" Its elements are of type {items['type']}."
    description = str(node.get("description", "")).rstrip()
    out: dict[str, Any] = {"type": "string", "description": f"{description} {note}".strip()}
    if "enum" in node:
        out["enum"] = node["enum"]
    return out


def bfcl_tools(item: BfclItem) -> list[dict[str, Any]]:
    """The item's functions as OpenAI `tools`: names with "_" for ".", JSON-schema types, and for Java and
    JavaScript every parameter a string of source text."""
    tools: list[dict[str, Any]] = []
    for function in item.functions:
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties") or {}
        if item.language is Language.PYTHON:
            converted = {name: _schema(node) for name, node in properties.items()}
            note = " Note that the provided function is in Python 3 syntax."
        else:
            converted = {name: _source_text_parameter(node, item.language) for name, node in properties.items()}
            note = f" Note that the provided function is in {_LANGUAGE_NAMES[item.language]} syntax."
        schema: dict[str, Any] = {"type": "object", "properties": converted}
        if parameters.get("required"):
            schema["required"] = list(parameters["required"])
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": str(function["name"]).replace(".", "_"),
                    "description": f"{function.get('description', '')}{note}".strip(),
                    "parameters": schema,
                },
            }
        )
    return tools


# ---------------------------------------------------------------- one item


def _unusable_output(raw: str) -> object:
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(decoded, dict) and set(decoded) == {"name", "arguments"}:
        return [decoded]
    if isinstance(decoded, list) and all(isinstance(entry, dict) for entry in decoded):
        return decoded
    return raw


def scored_output(reply: TargetReply, item: BfclItem, roles: GateRoles | None) -> object:
    """What the checker scores for `reply` (see the module docstring)."""
    if reply.calls:
        return [
            {call.name: call.raw_arguments if call.raw_arguments is not None else call.arguments}
            for call in reply.calls
        ]
    if roles is not None and reply.failing_role and reply.raw:
        return _unusable_output(reply.raw)
    if roles is None and reply.content:
        try:
            if parse_output(reply.content, item.language):
                return reply.content  # a prompting-style model wrote its calls as text
        except ParseError:
            pass
    return []


def attribute_role(result: ItemResult, reply: TargetReply, roles: GateRoles | None) -> str | None:
    """The MoR role a failed item is charged to (see the module docstring); None when passed or not role-gated."""
    if result.passed or roles is None:
        return None
    if reply.failing_role:
        return reply.failing_role
    if result.reason in _REASONER_REASONS:
        return roles.reasoner
    if result.reason in _EXECUTOR_REASONS:
        return roles.executor
    return None


@dataclass(frozen=True)
class BfclItemRun:
    """One item run through a target: the checker's verdict, the failing role, and what the model returned."""

    item_id: str
    category: str
    passed: bool
    reason: str | None
    error_type: str
    message: str
    failing_role: str | None
    output: dict[str, Any]
    latency_s: float

    def to_row(self) -> NewItemResult:
        """The SQL row of this item."""
        return NewItemResult(
            category=self.category,
            item_id=self.item_id,
            passed=self.passed,
            failure_reason=self.reason,
            failing_role=self.failing_role,
            detail=self.message or None,
            output=self.output,
            latency_ms=round(self.latency_s * 1000.0, 3),
        )


def _stored_output(reply: TargetReply, result: ItemResult) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": [{call.name: call.arguments} for call in reply.calls]}
    for key in ("content", "thought", "failure"):
        value = getattr(reply, key)
        if value:
            out[key] = value
    if reply.raw and not reply.calls:
        out["raw"] = reply.raw[:_MAX_RAW_CHARS]
    if result.error_type:
        out["error_type"] = result.error_type
    if reply.usage:
        out["usage"] = dict(reply.usage)
    return out


def run_bfcl_item(target: ChatTarget, item: BfclItem) -> BfclItemRun:
    """Ask `target` for one turn on `item` and score it."""
    roles = gate_roles_of(target)
    started = time.perf_counter()
    reply = target.respond(item.messages, bfcl_tools(item))
    elapsed = reply.latency_s or (time.perf_counter() - started)
    result = score_item(item, scored_output(reply, item, roles), underscore_names=True)
    role = attribute_role(result, reply, roles)
    reason = result.reason
    if reason is FailureReason.NO_CALL and reply.failing_role and not reply.calls:
        reason = FailureReason.UNPARSEABLE  # no call because a role's output was unusable, not by choice
    message = result.message
    if not result.passed and reply.failure:
        message = f"{message} [{role or 'model'}: {reply.failure}]".strip()
    return BfclItemRun(
        item_id=item.id,
        category=item.category,
        passed=result.passed,
        reason=reason.value if reason else None,
        error_type=result.error_type,
        message=message,
        failing_role=role,
        output=_stored_output(reply, result),
        latency_s=elapsed,
    )


# ---------------------------------------------------------------- a category


@dataclass
class BfclCategoryRun:
    """Every item of one category run through a target, with the category's score."""

    category: str
    items: list[BfclItemRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> CategoryScore:
        """Correct over run items (the whole category only when no item limit was set)."""
        return CategoryScore(self.category, sum(item.passed for item in self.items), len(self.items))

    @property
    def failures_by_role(self) -> dict[str, int]:
        """Failed items per failing role (role-gated targets only)."""
        return dict(Counter(item.failing_role for item in self.items if item.failing_role))

    @property
    def failures_by_reason(self) -> dict[str, int]:
        """Failed items per failure reason."""
        return dict(Counter(item.reason for item in self.items if item.reason))


def run_bfcl_category(
    target: ChatTarget,
    category: str,
    data_dir: Path,
    *,
    max_items: int | None = None,
    item_ids: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BfclCategoryRun:
    """Run `target` on a BFCL category's items (the first `max_items`, or those in `item_ids`), in file order."""
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items: got {max_items}, must be >= 1 (or None for every item)")
    items = load_items(category, data_dir)
    if item_ids is not None:
        wanted = set(item_ids)
        unknown = sorted(wanted - {item.id for item in items})
        if unknown:
            raise ValueError(f"item_ids: {unknown[:3]} are not items of {category}; e.g. {items[0].id}")
        items = [item for item in items if item.id in wanted]
    if max_items is not None:
        items = items[:max_items]
    run = BfclCategoryRun(items[0].category if items else category)
    started = time.perf_counter()
    for index, item in enumerate(items):
        run.items.append(run_bfcl_item(target, item))
        if progress is not None:
            progress(index + 1, len(items))
    run.seconds = time.perf_counter() - started
    return run


def bfcl_metrics(runs: Sequence[BfclCategoryRun]) -> dict[str, float]:
    """Flat metrics of category runs: those of every suite (`row_metrics`: `items`, `accuracy`,
    `accuracy/<category>`, `failures/<role>`, `reasons/<reason>`, `mean_latency_s`) and the leaderboard's summary
    columns whose categories were all run (`summary/non_live_ast`, ...)."""
    metrics = row_metrics([item.to_row() for run in runs for item in run.items])
    scores = {run.category: run.score for run in runs}
    for name, column in summarize(scores, counts={c: s.total for c, s in scores.items()}).to_dict().items():
        if column["complete"] and column["total"]:
            metrics[f"summary/{name}"] = float(column["accuracy"])  # type: ignore[arg-type]
    return metrics
