"""The agent loop of StableToolBench over any `ChatTarget`, in the benchmark's two inference modes.

- **CoT** (ReAct, one chain): the target is asked for the next turn until it finishes or `max_steps` turns.
- **DFSDT** (depth-first search over decision trees): from each state the target is asked for up to
  `beam_width` alternative turns, one after the other; a branch is followed depth-first until it finishes with an
  answer (the search stops), gives up (`Finish` with `give_up_and_restart`: the search goes back
  `give_up_backtrack` levels, i.e. it also abandons the state the give-up came from), or reaches a dead end (an
  unusable turn or `max_steps` turns: the search tries the next alternative of the same state). Every target call
  counts against `max_queries`; the search stops when it is spent. When a state is tried again, the request
  lists the actions already tried from it and asks for a different one (the diversity hint of DFSDT).

A turn's calls are run in order: `Finish` with `give_answer` ends the chain with its `final_answer`; a function the
query does not offer, or arguments that are not a JSON object, come back as error observations; every other call
goes to the virtual API server. A plain-text reply (no calls) counts as the final answer when
`content_as_answer` (our served agent's summarizer answers that way), else as a thought that the chain goes on
from.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from mor.evals.stabletoolbench.client import Observation
from mor.evals.stabletoolbench.data import FINISH, ApiRoute, StbQuery
from mor.evals.target import ChatTarget, TargetCall, TargetReply

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "MODES",
    "ApiCaller",
    "End",
    "Episode",
    "LoopConfig",
    "Mode",
    "Step",
    "initial_messages",
    "run_cot",
    "run_dfsdt",
    "run_episode",
]

Mode = Literal["cot", "dfsdt"]
MODES: tuple[str, ...] = ("cot", "dfsdt")

DEFAULT_SYSTEM_PROMPT = """You complete the user's task by calling the functions (tools) you are given. Work \
step by step: look at what you know so far, decide the next action and call one function; you then receive its \
output. When you have what the task needs, call Finish with return_type "give_answer" and a final_answer that \
fully answers the user, since the user sees only the final answer. If you cannot make progress from where you \
are, call Finish with return_type "give_up_and_restart". Always end by calling Finish."""

_DIVERSITY_HINT = """You are at a point of this task that has been tried before, and those attempts did not lead \
to an answer. The actions already tried from here, with what they returned:
{tried}
Choose a next action that differs from all of them."""

_GIVE_ANSWER = "give_answer"
_GIVE_UP = "give_up_and_restart"


class End(StrEnum):
    """How an episode ended."""

    ANSWER = "answer"
    GAVE_UP = "gave_up"
    STEP_LIMIT = "step_limit"
    NO_FINISH = "no_finish"
    BUDGET_EXHAUSTED = "budget_exhausted"


class ApiCaller(Protocol):
    """What runs a query's API calls (the virtual API server's client)."""

    def call(self, route: ApiRoute, arguments: Mapping[str, Any]) -> Observation:
        """The observation of one call."""


@dataclass(frozen=True)
class LoopConfig:
    """Limits and options of the agent loop (defaults: the benchmark's published inference settings)."""

    max_steps: int = 12
    beam_width: int = 2
    max_queries: int = 200
    give_up_backtrack: int = 2
    content_as_answer: bool = True
    max_observation_chars: int = 1024
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        problems = [
            f"{name}: got {value}, must be ≥ {low}; e.g. {name}={example}"
            for name, value, low, example in (
                ("max_steps", self.max_steps, 1, 12),
                ("beam_width", self.beam_width, 1, 2),
                ("max_queries", self.max_queries, 1, 200),
                ("give_up_backtrack", self.give_up_backtrack, 1, 2),
                ("max_observation_chars", self.max_observation_chars, 16, 1024),
            )
            if value < low
        ]
        if problems:
            raise ValueError("LoopConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class Step:
    """One call the agent made and what came back."""

    name: str
    arguments: dict[str, Any]
    observation: str
    error: str = ""
    kind: Literal["api", "finish", "invalid"] = "api"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the stored output."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "observation": self.observation,
            "error": self.error,
            "kind": self.kind,
            "source": self.source,
        }


@dataclass
class Episode:
    """One query's run: how it ended, the final answer, and the calls of the chain that produced it.

    For DFSDT, `steps` and `messages` are the path to the answer (or, without one, the last branch explored) and
    `search` counts target calls, expanded states and dead ends by kind.
    """

    mode: str
    end: End
    answer: str | None
    finish_type: str | None
    steps: list[Step]
    messages: list[dict[str, Any]]
    queries: int
    failing_role: str | None = None
    failure: str | None = None
    search: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    target_latency_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def api_steps(self) -> list[Step]:
        """The steps that went to the API server."""
        return [step for step in self.steps if step.kind == "api"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able) for the stored output."""
        return {
            "mode": self.mode,
            "end": self.end.value,
            "final_answer": self.answer,
            "finish_type": self.finish_type,
            "steps": [step.to_dict() for step in self.steps],
            "queries": self.queries,
            "failure": self.failure,
            "search": dict(self.search),
            "target_latency_s": self.target_latency_s,
            "usage": dict(self.usage),
        }


def initial_messages(query: StbQuery, config: LoopConfig) -> list[dict[str, Any]]:
    """The conversation a query starts from: the system prompt and the user's request."""
    return [{"role": "system", "content": config.system_prompt}, {"role": "user", "content": query.query}]


@dataclass
class _Outcome:
    """What one reply led to."""

    status: Literal["continue", "answer", "give_up", "unusable"]
    messages: list[dict[str, Any]]
    steps: list[Step]
    answer: str | None = None
    finish_type: str | None = None
    failure: str | None = None
    tried: list[dict[str, Any]] = field(default_factory=list)


def _observation(error: str, response: Any = "") -> str:
    return json.dumps({"error": error, "response": response}, ensure_ascii=False)


def _decoded_arguments(call: TargetCall) -> tuple[dict[str, Any] | None, str]:
    if call.arguments or not call.raw_arguments:
        return dict(call.arguments), ""
    try:
        value = json.loads(call.raw_arguments)
    except json.JSONDecodeError:
        return None, f"arguments of {call.name} are not valid JSON: {call.raw_arguments[:120]!r}"
    if not isinstance(value, dict):
        return None, f"arguments of {call.name} must be a JSON object, got {type(value).__name__}"
    return value, ""


class _Environment:
    """Runs the calls of one reply for one query."""

    def __init__(self, query: StbQuery, caller: ApiCaller, config: LoopConfig) -> None:
        self.query = query
        self.caller = caller
        self.config = config
        self._next_id = 0

    def _call_id(self, call: TargetCall) -> str:
        self._next_id += 1
        return call.id or f"call_{self._next_id}"

    def _finish(self, arguments: Mapping[str, Any]) -> tuple[Step, str | None, str | None]:
        """The Finish step, and (status, answer) when it ends the chain."""
        return_type = arguments.get("return_type")
        if return_type == _GIVE_ANSWER:
            answer = arguments.get("final_answer")
            if not isinstance(answer, str):
                error = "Finish: return_type give_answer needs a final_answer string"
                return Step(FINISH, dict(arguments), _observation(error), error, "invalid"), None, None
            step = Step(FINISH, dict(arguments), _observation("", "final answer received"), kind="finish")
            return step, "answer", answer
        if return_type == _GIVE_UP:
            return (
                Step(FINISH, dict(arguments), _observation("", "gave up; restarting"), kind="finish"),
                "give_up",
                None,
            )
        error = f"Finish: return_type must be {_GIVE_ANSWER} or {_GIVE_UP}, got {return_type!r}"
        return Step(FINISH, dict(arguments), _observation(error), error, "invalid"), None, None

    def _run(self, call: TargetCall) -> tuple[Step, str | None, str | None]:
        arguments, problem = _decoded_arguments(call)
        if arguments is None:
            return Step(call.name, {}, _observation(problem), problem, "invalid"), None, None
        if call.name == FINISH:
            return self._finish(arguments)
        route = self.query.routes.get(call.name)
        if route is None:
            error = f"no such function: {call.name}; call one of the offered functions"
            return Step(call.name, arguments, _observation(error), error, "invalid"), None, None
        observation = self.caller.call(route, arguments)
        text = observation.text(self.config.max_observation_chars)
        return Step(call.name, arguments, text, observation.error, "api", observation.source), None, None

    def apply(self, reply: TargetReply) -> _Outcome:
        """Run the reply's calls (up to a Finish that ends the chain) and say what the reply led to."""
        if reply.calls:
            steps: list[Step] = []
            tool_calls: list[dict[str, Any]] = []
            tool_messages: list[dict[str, Any]] = []
            status: Literal["continue", "answer", "give_up"] = "continue"
            answer: str | None = None
            for call in reply.calls:
                step, ended, final = self._run(call)
                call_id = self._call_id(call)
                raw = call.raw_arguments if call.raw_arguments and not step.arguments else None
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": raw or json.dumps(step.arguments, ensure_ascii=False),
                        },
                    }
                )
                tool_messages.append(
                    {"role": "tool", "tool_call_id": call_id, "name": call.name, "content": step.observation}
                )
                steps.append(step)
                if ended is not None:
                    status = "answer" if ended == "answer" else "give_up"
                    answer = final
                    break  # calls after a Finish are not run
            assistant = {"role": "assistant", "content": reply.thought or reply.content, "tool_calls": tool_calls}
            tried = [{"name": s.name, "arguments": s.arguments, "observation": s.observation[:300]} for s in steps]
            finish_type = {"answer": _GIVE_ANSWER, "give_up": "give_up"}.get(status)
            return _Outcome(status, [assistant, *tool_messages], steps, answer, finish_type, tried=tried)
        if reply.failure is None and reply.content and reply.content.strip():
            assistant = {"role": "assistant", "content": reply.content}
            tried = [{"thought": reply.content[:300]}]
            if self.config.content_as_answer:
                return _Outcome("answer", [assistant], [], reply.content, "content", tried=tried)
            return _Outcome("continue", [assistant], [], tried=tried)
        failure = reply.failure or "the target replied with neither a function call nor an answer"
        return _Outcome("unusable", [], [], failure=failure, tried=[{"failure": failure[:300]}])


class _Tally:
    """Per-episode accounting of target calls."""

    def __init__(self) -> None:
        self.queries = 0
        self.target_latency_s = 0.0
        self.usage: Counter[str] = Counter()
        self.last_failing_role: str | None = None

    def ask(
        self, target: ChatTarget, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> TargetReply:
        reply = target.respond(messages, tools, tool_choice="auto")
        self.queries += 1
        self.target_latency_s += reply.latency_s
        self.usage.update({key: int(value) for key, value in reply.usage.items()})
        if reply.failing_role:
            self.last_failing_role = reply.failing_role
        return reply


def run_cot(target: ChatTarget, query: StbQuery, caller: ApiCaller, config: LoopConfig | None = None) -> Episode:
    """One chain: ask for turns until a Finish, an unusable turn, or `max_steps` turns."""
    config = config or LoopConfig()
    started = time.perf_counter()
    environment = _Environment(query, caller, config)
    tally = _Tally()
    messages = initial_messages(query, config)
    steps: list[Step] = []
    end, answer, finish_type, failure, role = End.STEP_LIMIT, None, None, None, None
    for _ in range(config.max_steps):
        reply = tally.ask(target, messages, query.tools)
        outcome = environment.apply(reply)
        messages = messages + outcome.messages
        steps.extend(outcome.steps)
        if reply.failing_role:
            role = reply.failing_role
        if outcome.status == "answer":
            end, answer, finish_type = End.ANSWER, outcome.answer, outcome.finish_type
            break
        if outcome.status == "give_up":
            end, finish_type = End.GAVE_UP, outcome.finish_type
            break
        if outcome.status == "unusable":
            end, failure = End.NO_FINISH, outcome.failure
            break
    return Episode(
        mode="cot",
        end=end,
        answer=answer,
        finish_type=finish_type,
        steps=steps,
        messages=messages,
        queries=tally.queries,
        failing_role=role,
        failure=failure,
        search={"queries": tally.queries},
        latency_s=time.perf_counter() - started,
        target_latency_s=tally.target_latency_s,
        usage=dict(tally.usage),
    )


@dataclass
class _Node:
    """A state of the DFSDT tree: the conversation so far and the actions already tried from it."""

    messages: list[dict[str, Any]]
    steps: list[Step]
    depth: int
    failing_role: str | None = None
    tried: list[dict[str, Any]] = field(default_factory=list)


_STOP = 1 << 30  # a backtrack length that unwinds the whole search


class _Search:
    """Depth-first search over alternative turns, with the backtracking rules of DFSDT."""

    def __init__(self, target: ChatTarget, query: StbQuery, caller: ApiCaller, config: LoopConfig) -> None:
        self.target = target
        self.query = query
        self.config = config
        self.environment = _Environment(query, caller, config)
        self.tally = _Tally()
        self.dead_ends: Counter[str] = Counter()
        self.expanded = 0
        self.exhausted = False
        self.found: tuple[_Node, _Outcome] | None = None
        self.last_dead: tuple[_Node, End, str | None] | None = None

    def _dead(self, node: _Node, end: End, failure: str | None = None) -> None:
        self.dead_ends[end.value] += 1
        self.last_dead = (node, end, failure)

    def _request(self, node: _Node) -> list[dict[str, Any]]:
        if not node.tried:
            return node.messages
        hint = _DIVERSITY_HINT.format(tried=json.dumps(node.tried, ensure_ascii=False, indent=1))
        return [*node.messages, {"role": "user", "content": hint}]

    def expand(self, node: _Node) -> int:
        """Search below `node`; returns how many levels to go back (`_STOP` ends the search)."""
        if node.depth >= self.config.max_steps:
            self._dead(node, End.STEP_LIMIT)
            return 1
        self.expanded += 1
        for _ in range(self.config.beam_width):
            if self.tally.queries >= self.config.max_queries:
                self.exhausted = True
                return _STOP
            reply = self.tally.ask(self.target, self._request(node), self.query.tools)
            outcome = self.environment.apply(reply)
            node.tried.extend(outcome.tried)
            child = _Node(
                messages=node.messages + outcome.messages,
                steps=node.steps + outcome.steps,
                depth=node.depth + 1,
                failing_role=reply.failing_role or node.failing_role,
            )
            if outcome.status == "answer":
                self.found = (child, outcome)
                return _STOP
            if outcome.status == "give_up":
                self._dead(child, End.GAVE_UP)
                back = self.config.give_up_backtrack
            elif outcome.status == "unusable":
                self._dead(child, End.NO_FINISH, outcome.failure)
                back = 1
            else:
                back = self.expand(child)
            if back >= _STOP:
                return _STOP
            if back > 1:
                return back - 1
        return 1

    def episode(self, started: float) -> Episode:
        """The episode the finished search stands for."""
        failure: str | None = None
        if self.found is not None:
            node, outcome = self.found
            end, answer, finish_type = End.ANSWER, outcome.answer, outcome.finish_type
        else:
            answer = None
            if self.exhausted:
                end = End.BUDGET_EXHAUSTED
            elif self.dead_ends[End.GAVE_UP.value]:
                end = End.GAVE_UP
            elif self.dead_ends[End.STEP_LIMIT.value]:
                end = End.STEP_LIMIT
            else:
                end = End.NO_FINISH
            finish_type = "give_up" if end == End.GAVE_UP else None
            if self.last_dead is not None:
                node, _, failure = self.last_dead
            else:
                node = _Node(initial_messages(self.query, self.config), [], 0)
        search = {"queries": self.tally.queries, "expanded": self.expanded}
        search.update({f"dead_ends/{kind}": count for kind, count in sorted(self.dead_ends.items())})
        return Episode(
            mode="dfsdt",
            end=end,
            answer=answer,
            finish_type=finish_type,
            steps=node.steps,
            messages=node.messages,
            queries=self.tally.queries,
            # An answer's path speaks for itself; without one, the last role that failed anywhere in the search.
            failing_role=node.failing_role if self.found else node.failing_role or self.tally.last_failing_role,
            failure=failure,
            search=search,
            latency_s=time.perf_counter() - started,
            target_latency_s=self.tally.target_latency_s,
            usage=dict(self.tally.usage),
        )


def run_dfsdt(target: ChatTarget, query: StbQuery, caller: ApiCaller, config: LoopConfig | None = None) -> Episode:
    """Depth-first search over alternative turns until an answer, or until the tree or the budget is spent."""
    config = config or LoopConfig()
    started = time.perf_counter()
    search = _Search(target, query, caller, config)
    search.expand(_Node(initial_messages(query, config), [], 0))
    return search.episode(started)


def run_episode(
    target: ChatTarget, query: StbQuery, caller: ApiCaller, *, mode: Mode = "cot", config: LoopConfig | None = None
) -> Episode:
    """Run one query in `mode` ("cot" or "dfsdt")."""
    if mode == "cot":
        return run_cot(target, query, caller, config)
    if mode == "dfsdt":
        return run_dfsdt(target, query, caller, config)
    raise ValueError(f"mode: got {mode!r}, must be one of {', '.join(MODES)}; e.g. mode='dfsdt'")
