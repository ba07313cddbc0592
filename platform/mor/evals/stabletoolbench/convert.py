"""Answers in the benchmark's converted format, read as judge inputs, so runs made elsewhere can be judged here.

The format (`model_predictions_converted/<model>/<group>.json` upstream): an object mapping query ids to
`{"query", "available_tools", "answer": {"method", "total_steps", "final_answer", "answer_details"}}`, where
`final_answer` is the JSON text of the Finish arguments (`""` when the run never finished) and `answer_details`
is a chain of nodes `{"role", "message", "next": [...]}` whose `tool` nodes hold `{"name", "arguments",
"response"}` (arguments and response as JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mor.evals.stabletoolbench.data import FINISH, StbDataError
from mor.evals.stabletoolbench.judge import JudgeInput
from mor.evals.stabletoolbench.loop import Step

__all__ = ["ConvertedAnswer", "judge_input_from_converted", "read_converted"]


@dataclass(frozen=True)
class ConvertedAnswer:
    """One query's answer from a converted file: its id, the inference method named there, the judge's view."""

    id: str
    method: str
    judge_input: JudgeInput


def _json_object(text: Any) -> dict[str, Any] | None:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _final(answer: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(final answer, finish type) from the Finish arguments' JSON text."""
    raw = answer.get("final_answer") or ""
    if not raw:
        return None, None
    arguments = _json_object(raw)
    if arguments is None:  # not JSON: the benchmark still judges the text unless it is a give-up
        return (None, "give_up") if "give_up_and_restart" in raw else (raw, "give_answer")
    if arguments.get("return_type") == "give_up_and_restart":
        return None, "give_up"
    final = arguments.get("final_answer")
    return (final if isinstance(final, str) else None), "give_answer"


def _steps(details: Any, offered: set[str]) -> list[Step]:
    steps: list[Step] = []
    nodes = details if isinstance(details, list) else [details]
    while nodes:
        node = nodes[0]  # a converted answer is one chain: follow the first child
        if not isinstance(node, Mapping):
            break
        message = node.get("message")
        if node.get("role") == "tool" and isinstance(message, Mapping):
            name = str(message.get("name", ""))
            arguments = _json_object(message.get("arguments") or "{}") or {"raw": message.get("arguments")}
            response = str(message.get("response", ""))
            observation = _json_object(response) or {}
            error = str(observation.get("error") or "")
            if name == FINISH:
                steps.append(Step(name, arguments, response, "", "finish"))
            elif name not in offered:
                steps.append(Step(name, arguments, response, error or f"no such function: {name}", "invalid"))
            else:
                steps.append(Step(name, arguments, response, error, "api"))
        nodes = list(node.get("next") or [])
    return steps


def judge_input_from_converted(entry: Mapping[str, Any]) -> JudgeInput:
    """The judge's view of one converted answer."""
    answer = entry.get("answer") or {}
    tools = [str(tool.get("name")) for tool in entry.get("available_tools") or [] if isinstance(tool, Mapping)]
    final, finish_type = _final(answer)
    steps = _steps(answer.get("answer_details") or [], set(tools))
    return JudgeInput(str(entry.get("query", "")), final, finish_type, steps, tools)


def read_converted(path: Path) -> list[ConvertedAnswer]:
    """Every answer of a converted file, in the file's order."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StbDataError(f"{path}: no such file; give a converted answer file (<model>/<group>.json)") from None
    except json.JSONDecodeError as error:
        raise StbDataError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise StbDataError(f"{path}: expected an object of query id → answer, got {type(data).__name__}")
    answers: list[ConvertedAnswer] = []
    for query_id, entry in data.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("answer"), Mapping):
            raise StbDataError(f"{path}: query {query_id}: expected {{query, available_tools, answer: {{...}}}}")
        method = str(entry["answer"].get("method", ""))
        answers.append(ConvertedAnswer(str(query_id), method, judge_input_from_converted(entry)))
    return answers
