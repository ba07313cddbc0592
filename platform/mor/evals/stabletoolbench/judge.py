"""Judging StableToolBench answers for the solvable pass rate (SoPR).

Every item gets one or more judgements, each `solved`, `unsolved` or `unsure`, combined by majority:

- An item **passes** when it has at least one `solved` judgement and no more `unsolved` than `solved` ones
  (`unsure` judgements abstain; a tie between solved and unsolved passes, as in the benchmark's pass-rate script,
  which breaks unsure cases by a coin flip where we abstain, to stay deterministic).
- Its **score** counts each judgement 1 (solved), 0.5 (unsure) or 0 (unsolved), averaged: the solve rate the
  benchmark's scripts print and its tables report. The summary's `sopr` is the mean score.

Two judges, never mixed within one run (every result carries its judge's kind):

- `LlmJudge` (kind "llm"): a model at an OpenAI-compatible endpoint, asked several times (3 by default). Without a
  final answer (no Finish with give_answer, an empty answer, or a give-up) a judgement is `unsolved` without asking.
  Otherwise the model first sees only the query and the final answer: an apology, a refusal or an answer that does
  not take the query on directly is unsolved; an answer that does is solved or unsolved when the answer alone lets
  the model be sure, else unsure. An unsure first look is settled by a second look at the whole execution (every
  call, its arguments and output): unsolved when every call failed or when the answer says things the outputs
  contradict or do not back; unsure when the information cannot be checked; solved when successful calls really
  answer the query.
- `RuleBasedJudge` (kind "rule-based"): for runs with no judge model. One judgement by fixed rules, a proxy for the
  LLM judge and labelled as such: unsolved without a final answer, for an answer whose first sentence apologises
  or refuses, or when no API call succeeded; unsure when the answer shares no content word or number with any
  successful call's output (ungrounded); solved otherwise. On the benchmark's published example answers it agrees
  with the published LLM labels (tested), but it is not the benchmark's judge.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from mor.evals.stabletoolbench.llm import LlmEndpoint, chat_completion, message_json, tool_call_arguments
from mor.evals.stabletoolbench.loop import Episode, Step

__all__ = [
    "JUDGE_KINDS",
    "AnswerStatus",
    "Judge",
    "JudgeInput",
    "JudgeKind",
    "Judgement",
    "LlmJudge",
    "RuleBasedJudge",
    "Verdict",
    "combine",
]

JudgeKind = Literal["llm", "rule-based"]
JUDGE_KINDS: tuple[str, ...] = ("llm", "rule-based")


class AnswerStatus(StrEnum):
    """One judgement's status."""

    SOLVED = "solved"
    UNSOLVED = "unsolved"
    UNSURE = "unsure"


_SCORES = {AnswerStatus.SOLVED: 1.0, AnswerStatus.UNSURE: 0.5, AnswerStatus.UNSOLVED: 0.0}


@dataclass(frozen=True)
class JudgeInput:
    """What a judge sees of one item: the query, the final answer (None without one) and the calls made."""

    query: str
    answer: str | None
    finish_type: str | None
    steps: list[Step] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)

    @classmethod
    def from_episode(cls, query: str, episode: Episode, tool_names: Sequence[str] = ()) -> JudgeInput:
        """The judge's view of an agent episode."""
        return cls(query, episode.answer, episode.finish_type, list(episode.steps), list(tool_names))

    @property
    def has_answer(self) -> bool:
        """True when the agent gave a non-empty final answer."""
        return self.answer is not None and bool(self.answer.strip()) and self.finish_type != "give_up"

    def details(self) -> dict[str, Any]:
        """The execution as plain data: the calls with their arguments and outputs, and the final answer."""
        return {
            "query": self.query,
            "calls": [{"function": s.name, "arguments": s.arguments, "output": s.observation} for s in self.steps],
            "final_answer": self.answer or "",
        }


@dataclass(frozen=True)
class Judgement:
    """One judgement: a status and the reason given for it."""

    status: AnswerStatus
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        """Plain data."""
        return {"status": self.status.value, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """An item's judgements combined: passed (majority), the majority status, the SoPR score, the judge's kind."""

    kind: str
    passed: bool
    status: AnswerStatus
    score: float
    judgements: list[Judgement]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the stored output."""
        return {
            "kind": self.kind,
            "passed": self.passed,
            "status": self.status.value,
            "score": self.score,
            "judgements": [judgement.to_dict() for judgement in self.judgements],
        }


def combine(kind: str, judgements: Sequence[Judgement]) -> Verdict:
    """Combine judgements by the majority rule (see the module doc)."""
    if kind not in JUDGE_KINDS:
        raise ValueError(f"kind: got {kind!r}, must be one of {', '.join(JUDGE_KINDS)}")
    if not judgements:
        raise ValueError("judgements: got none; an item needs at least one judgement")
    counts = Counter(judgement.status for judgement in judgements)
    solved, unsolved, unsure = (counts[s] for s in (AnswerStatus.SOLVED, AnswerStatus.UNSOLVED, AnswerStatus.UNSURE))
    passed = solved > 0 and solved >= unsolved
    if passed:
        status = AnswerStatus.SOLVED
    else:
        status = AnswerStatus.UNSURE if unsure > unsolved else AnswerStatus.UNSOLVED
    score = sum(_SCORES[judgement.status] for judgement in judgements) / len(judgements)
    return Verdict(kind, passed, status, score, list(judgements))


@runtime_checkable
class Judge(Protocol):
    """Judges whether an agent's run solved its query."""

    kind: str

    def judge(self, task: JudgeInput) -> Verdict:
        """The verdict on one item."""


def _no_answer_reason(task: JudgeInput) -> str:
    if task.finish_type == "give_up":
        return "the agent gave up (Finish with give_up_and_restart)"
    if task.answer is None:
        return "no final answer: the agent never finished with give_answer"
    return "the final answer is empty"


# --- LLM judge ---------------------------------------------------------------------------------------------------

_STATUS_VALUES = ["Solved", "Unsolved", "Unsure"]

_FIRST_LOOK = """Decide whether the answer below resolves the query, and set answer_status as follows.
1. If the answer apologises, refuses, or does not respond positively and directly to the query: "Unsolved".
2. If it does respond directly, look closer:
2.1 if the answer alone does not let you tell whether the query is resolved: "Unsure";
2.2 if you can tell with confidence: "Solved" or "Unsolved".

Query:
{query}

Answer:
{answer}

Call check_answer_status with answer_status and a short reason."""

_SECOND_LOOK = """Decide whether the run below resolved the query. You see every function call the agent made, \
with its arguments and output, and its final answer. Set answer_status as follows.
1. If every call's output shows an error: "Unsolved".
2. If the final answer states things the call outputs contradict or do not support: "Unsolved".
3. If you cannot verify whether the information in the final answer is true and valid: "Unsure".
4. If successful calls in the run really answer the query: "Solved".

Query:
{query}

Run:
{details}

Call parse_answer_status with answer_status and a short reason."""


def _status_tool(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    "answer_status": {"type": "string", "enum": _STATUS_VALUES},
                    "reason": {"type": "string", "description": "why, in a sentence or two"},
                },
                "required": ["answer_status", "reason"],
            },
        },
    }


def _read_status(message: dict[str, Any], name: str) -> Judgement | None:
    """The judgement in a judge reply: the forced function call, else JSON or a status word in the text."""
    arguments = tool_call_arguments(message, name)
    content = str(message.get("content") or "")
    if arguments is None:
        value = message_json(content)
        arguments = value if isinstance(value, dict) else None
    if arguments is not None:
        raw = str(arguments.get("answer_status", "")).strip().lower()
        for status in AnswerStatus:
            if raw == status.value:
                return Judgement(status, str(arguments.get("reason") or content))
    words = re.findall(r"\b(solved|unsolved|unsure)\b", content.lower())
    if len(set(words)) == 1:
        return Judgement(AnswerStatus(words[0]), content.strip()[:500])
    return None


class LlmJudge:
    """The benchmark's judging rules, put to a model at an OpenAI-compatible endpoint, `judgements` times."""

    kind = "llm"

    def __init__(
        self,
        endpoint: LlmEndpoint,
        *,
        judgements: int = 3,
        temperature: float | None = None,
        attempts: int = 2,
        max_detail_chars: int = 12000,
    ) -> None:
        problems = [
            f"{name}: got {value}, must be ≥ 1"
            for name, value in (("judgements", judgements), ("attempts", attempts))
            if value < 1
        ]
        if problems:
            raise ValueError("LlmJudge: " + "; ".join(problems))
        self.endpoint = endpoint
        self.judgements = judgements
        self.temperature = temperature
        self.attempts = attempts
        self.max_detail_chars = max_detail_chars

    def _ask(self, prompt: str, name: str, description: str) -> Judgement:
        tool = _status_tool(name, description)
        choice = {"type": "function", "function": {"name": name}}
        last = ""
        for _ in range(self.attempts):
            message = chat_completion(
                self.endpoint,
                [{"role": "user", "content": prompt}],
                tools=[tool],
                tool_choice=choice,
                temperature=self.temperature,
            )
            judgement = _read_status(message, name)
            if judgement is not None:
                return judgement
            last = str(message.get("content") or message.get("tool_calls") or "")
        return Judgement(AnswerStatus.UNSURE, f"judge reply unreadable after {self.attempts} attempts: {last[:200]}")

    def _one(self, task: JudgeInput) -> Judgement:
        first = self._ask(
            _FIRST_LOOK.format(query=task.query, answer=task.answer),
            "check_answer_status",
            "Give the status of the answer to the query.",
        )
        if first.status != AnswerStatus.UNSURE:
            return first
        details = json.dumps(task.details(), ensure_ascii=False)[: self.max_detail_chars]
        return self._ask(
            _SECOND_LOOK.format(query=task.query, details=details),
            "parse_answer_status",
            "Give the status of the run's answer to the query.",
        )

    def judge(self, task: JudgeInput) -> Verdict:
        """Ask the model `judgements` times (none without a final answer) and combine."""
        if not task.has_answer:
            return combine(self.kind, [Judgement(AnswerStatus.UNSOLVED, _no_answer_reason(task))])
        return combine(self.kind, [self._one(task) for _ in range(self.judgements)])


# --- rule-based judge ----------------------------------------------------------------------------------------------

_REFUSAL = re.compile(
    r"\b(sorry|apolog|unfortunately|unable to|i (?:was|am) not able|i can(?:no|')t|could not|couldn't|"
    r"failed to|no (?:relevant )?(?:information|results|data) (?:was |were )?(?:found|available))",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z][a-z0-9\-']{3,}|\d[\d.,]+\d", re.IGNORECASE)
_FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?](?:\s|$)|\n|$)", re.DOTALL)
_STOPWORDS = frozenset(
    "about above after again also been before being below between both could does doing down during each from "
    "further have having here into itself just more most once only other over same should some such than that "
    "their them then there these they this those through under until very were what when where which while "
    "will with would your yours information following provide provided here's response result results data "
    "error true false none null".split()
)


def _content_words(text: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(text) if word.lower() not in _STOPWORDS}


class RuleBasedJudge:
    """A fixed-rule stand-in for the LLM judge (see the module doc); its results are labelled "rule-based"."""

    kind = "rule-based"

    def judge(self, task: JudgeInput) -> Verdict:
        """One judgement by the rules."""
        return combine(self.kind, [self._judgement(task)])

    def _judgement(self, task: JudgeInput) -> Judgement:
        if not task.has_answer:
            return Judgement(AnswerStatus.UNSOLVED, _no_answer_reason(task))
        answer = task.answer or ""
        # Only an answer that opens with an apology or refusal is one; a full answer may regret a missing detail.
        refusal = _REFUSAL.search(_FIRST_SENTENCE.match(answer.strip()).group(0))
        if refusal:
            return Judgement(AnswerStatus.UNSOLVED, f"the answer is an apology or refusal ({refusal.group(0)!r})")
        succeeded = [step for step in task.steps if step.kind == "api" and not step.error]
        if not succeeded:
            tried = sum(step.kind == "api" for step in task.steps)
            why = f"all {tried} API calls failed" if tried else "no API was called"
            return Judgement(AnswerStatus.UNSOLVED, f"{why}, so the answer rests on no tool output")
        evidence = set().union(*(_content_words(step.observation) for step in succeeded))
        shared = _content_words(answer) & evidence
        if not shared:
            return Judgement(AnswerStatus.UNSURE, "the answer shares no content word or number with any tool output")
        return Judgement(
            AnswerStatus.SOLVED,
            f"{len(succeeded)} successful API call(s); the answer uses their output (e.g. {sorted(shared)[:3]})",
        )
