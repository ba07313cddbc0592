"""The role-gated agent: Reasoner → Executor → observation → Reasoner → … → Summarizer, with step limits.

The gate is a rule: the reasoner names the next role; the executor's calls are run and their observations fed
back to the reasoner; the summarizer's text ends the episode. Bad role output never raises: it becomes an
`AgentFailure` recorded against the role (a bad executor call is also fed back as an error observation, so the
reasoner may retry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mor.agent.generator import BatchRoleGenerator, RoleGenerator
from mor.agent.messages import messages_to_trajectory, tool_calls_message
from mor.agent.parse import ParseFailure, clean_output, parse_calls, parse_reasoner
from mor.data.render import Renderer
from mor.data.schema import DEFAULT_ROLES, Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["AgentConfig", "AgentFailure", "AgentRun", "AgentAction", "AgentTask", "Agent", "ExecuteTool"]

ExecuteTool = Callable[[str, dict[str, Any]], Any]
"""Runs one call: (function name, arguments) → observation (a JSON-able value or text)."""


@dataclass(frozen=True)
class AgentConfig:
    """Role names of the gate and its limits."""

    reasoner: str = "reasoner"
    executor: str = "executor"
    summarizer: str = "summarizer"
    max_steps: int = 8
    max_calls: int = 8
    max_new_tokens: Mapping[str, int] = field(
        default_factory=lambda: {"reasoner": 96, "executor": 160, "summarizer": 192}
    )
    default_max_new_tokens: int = 128
    max_context_tokens: int | None = None

    def budget(self, role: str) -> int:
        """Token budget of one turn of `role`."""
        return int(self.max_new_tokens.get(role, self.default_max_new_tokens))


@dataclass(frozen=True)
class AgentFailure:
    """A role produced unusable output (or the gate hit a limit)."""

    role: str
    reason: str
    output: str = ""


@dataclass
class AgentRun:
    """The outcome of `Agent.run`."""

    trajectory: Trajectory
    calls: list[ToolCall]
    answer: str | None
    failures: list[AgentFailure]
    role_seconds: dict[str, float]
    role_turns: dict[str, int]
    latency_s: float
    """Model time of the run: the sum of its role turns' generation time (its share of batched calls)."""

    @property
    def failed_role(self) -> str | None:
        """The role of the first failure, None when every turn was usable."""
        return self.failures[0].role if self.failures else None

    @property
    def ok(self) -> bool:
        """Whether the run ended with an answer and no failure."""
        return self.answer is not None and not self.failures


@dataclass(frozen=True)
class AgentTask:
    """One episode to run: the query, the candidate tools, an optional system prompt and an id."""

    query: str
    tools: Sequence[Tool | Mapping[str, Any]]
    system: str | None = None
    id: str = "run"


@dataclass
class AgentAction:
    """One step of the single-step API: tool calls to run, or the final answer."""

    thought: str | None
    calls: list[ToolCall]
    content: str | None
    failure: AgentFailure | None = None
    role_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether this action is the final answer (no calls)."""
        return not self.calls

    def to_message(self) -> dict[str, Any]:
        """The OpenAI assistant message of this action."""
        return tool_calls_message(self.thought, self.calls, None if self.calls else (self.content or ""))


def _observation_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class _Episode:
    """The gate's state for one episode: which role speaks next, and what its output does to the trajectory."""

    def __init__(self, task: AgentTask, config: AgentConfig, execute_tool: ExecuteTool) -> None:
        offered = [tool if isinstance(tool, Tool) else Tool.from_openai(dict(tool)) for tool in task.tools]
        turns = ([Turn(role="system", content=task.system)] if task.system else []) + [
            Turn(role="user", content=task.query)
        ]
        self.trajectory = Trajectory(id=task.id, tools=offered, turns=turns, metadata=TrajectoryMeta(source="agent"))
        self.config = config
        self.execute_tool = execute_tool
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.failures: list[AgentFailure] = []
        self.calls: list[ToolCall] = []
        self.answer: str | None = None
        self.next_role: str | None = None
        self._reason_or_stop()

    def _count(self, role: str) -> None:
        self.counts[role] = self.counts.get(role, 0) + 1

    def _reason_or_stop(self) -> None:
        cfg = self.config
        if self.counts.get(cfg.reasoner, 0) >= cfg.max_steps:
            self.failures.append(AgentFailure(cfg.reasoner, f"step limit reached ({cfg.max_steps} reasoner turns)"))
            self.next_role = None
        else:
            self.next_role = cfg.reasoner

    def feed(self, role: str, output: str | AgentFailure, seconds: float, roles: Sequence[str]) -> None:
        """Take the output of `role` (or its failure) and move the gate on."""
        cfg = self.config
        self.seconds[role] = self.seconds.get(role, 0.0) + seconds
        self._count(role)
        if isinstance(output, AgentFailure) and role != cfg.executor:
            self.failures.append(output)
            self.next_role = None
            return
        if role == cfg.reasoner:
            parsed = parse_reasoner(str(output), [r for r in roles if r != cfg.reasoner])
            if isinstance(parsed, ParseFailure):
                self.failures.append(AgentFailure(role, parsed.reason, str(output)))
                self.next_role = None
                return
            thought, chosen = parsed
            self.trajectory.turns.append(Turn(role=role, thought=thought, next_role=chosen))
            if chosen == cfg.executor and len(self.calls) >= cfg.max_calls:
                self.failures.append(AgentFailure(role, f"call limit reached ({cfg.max_calls} calls)"))
                self.next_role = None
                return
            self.next_role = chosen
        elif role == cfg.executor:
            calls = output if isinstance(output, AgentFailure) else parse_calls(str(output), self.trajectory.tools)
            if isinstance(calls, (ParseFailure, AgentFailure)):
                failure = calls if isinstance(calls, AgentFailure) else AgentFailure(role, calls.reason, str(output))
                self.failures.append(failure)
                self.trajectory.turns.append(Turn(role=role, content=failure.output))
                self.trajectory.turns.append(Turn(role="observation", content=_observation_text(
                    {"error": f"the call could not be parsed: {failure.reason}"})))
            else:
                self._run_calls(calls)
            self._reason_or_stop()
        elif role == cfg.summarizer:
            if not output:
                self.failures.append(AgentFailure(role, "empty answer"))
            else:
                self.trajectory.turns.append(Turn(role=role, content=str(output)))
                self.answer = str(output)
            self.next_role = None
        else:  # a custom role: its text goes back to the reasoner
            self.trajectory.turns.append(Turn(role=role, content=str(output)))
            self._reason_or_stop()

    def _run_calls(self, calls: list[ToolCall]) -> None:
        for call in calls:
            call.id = f"call_{len(self.calls) + 1}"
            self.calls.append(call)
        self.trajectory.turns.append(Turn(role=self.config.executor, calls=calls))
        for call in calls:
            try:
                observation = self.execute_tool(call.name, dict(call.arguments))
            except Exception as error:  # the environment's failure is an observation, not a crash
                observation = {"error": f"{type(error).__name__}: {error}"}
            self.trajectory.turns.append(
                Turn(role="observation", content=_observation_text(observation), call_id=call.id)
            )

    def result(self) -> AgentRun:
        return AgentRun(
            trajectory=self.trajectory,
            calls=self.calls,
            answer=self.answer,
            failures=self.failures,
            role_seconds=self.seconds,
            role_turns=self.counts,
            latency_s=sum(self.seconds.values()),
        )


class Agent:
    """A role-gated agent over a role generator and the tokenizer/roles it was trained with."""

    def __init__(
        self,
        generator: RoleGenerator,
        tokenizer: Any,
        *,
        roles: Sequence[str] = DEFAULT_ROLES,
        config: AgentConfig | None = None,
    ) -> None:
        self.generator = generator
        self.tokenizer = tokenizer
        self.config = config or AgentConfig()
        self.renderer = Renderer(tokenizer, roles)
        missing = [name for name in (self.config.reasoner, self.config.executor, self.config.summarizer)
                   if name not in self.renderer.role_index]
        if missing:
            raise ValueError(
                f"agent roles {missing} are not among the model's roles {list(roles)}; set AgentConfig(reasoner=..., "
                "executor=..., summarizer=...) to role names the model was trained with"
            )

    # -- role turns -----------------------------------------------------------------------------------------------

    def _decode(self, role: str, new_ids: list[int]) -> str | AgentFailure:
        stop = self.renderer.end_ids
        finished = len(new_ids) >= len(stop) and new_ids[-len(stop):] == stop
        text = self.tokenizer.decode(new_ids[: -len(stop)] if finished else new_ids, skip_special_tokens=True)
        if not finished and clean_output(text) == text.strip():
            return AgentFailure(role, f"no end marker within {self.config.budget(role)} tokens", text)
        return clean_output(text)

    def _generate_many(self, requests: Sequence[tuple[Trajectory, str]]) -> list[tuple[str | AgentFailure, float]]:
        """Outputs of several role turns (batched when the generator can), with each one's share of the time."""
        results: list[tuple[str | AgentFailure, float] | None] = [None] * len(requests)
        prompts, budgets, slots = [], [], []
        limit = self.config.max_context_tokens
        for index, (trajectory, role) in enumerate(requests):
            prompt = self.renderer.prompt(trajectory, role)
            budget = self.config.budget(role)
            if limit is not None and len(prompt) + budget > limit:
                results[index] = (AgentFailure(role, f"context too long: {len(prompt)} prompt tokens + {budget} new "
                                                     f"> max_context_tokens {limit}"), 0.0)
                continue
            prompts.append((prompt.input_ids, prompt.role_ids, role))
            budgets.append(budget)
            slots.append(index)
        if prompts:
            stop = self.renderer.end_ids
            start = time.perf_counter()
            if isinstance(self.generator, BatchRoleGenerator):
                outputs = self.generator.generate_batch(prompts, max_new_tokens=budgets, stop_ids=stop)
            else:
                outputs = [self.generator.generate(ids, roles, role, max_new_tokens=budget, stop_ids=stop)
                           for (ids, roles, role), budget in zip(prompts, budgets, strict=True)]
            share = (time.perf_counter() - start) / len(prompts)
            for slot, (_, _, role), new_ids in zip(slots, prompts, outputs, strict=True):
                results[slot] = (self._decode(role, list(new_ids)), share)
        return [result for result in results if result is not None]

    # -- full episodes --------------------------------------------------------------------------------------------

    def run(
        self,
        query: str,
        tools: Sequence[Tool | Mapping[str, Any]],
        execute_tool: ExecuteTool,
        *,
        system: str | None = None,
        trajectory_id: str = "run",
    ) -> AgentRun:
        """Answer `query` with `tools`, running calls through `execute_tool` until the summarizer answers."""
        return self.run_batch([AgentTask(query, tools, system, trajectory_id)], execute_tool)[0]

    def run_batch(
        self,
        tasks: Sequence[AgentTask],
        execute_tool: ExecuteTool,
        *,
        batch_size: int = 16,
    ) -> list[AgentRun]:
        """Run many episodes in lockstep: each round, every unfinished episode's next role turn is generated in
        one batched call (rows of different roles together). `latency_s` of a run is its share of the time."""
        if batch_size < 1:
            raise ValueError(f"batch_size: got {batch_size}, must be ≥ 1; e.g. 16")
        runs: list[AgentRun] = []
        for first in range(0, len(tasks), batch_size):
            episodes = [_Episode(task, self.config, execute_tool) for task in tasks[first : first + batch_size]]
            while True:
                active = [episode for episode in episodes if episode.next_role is not None]
                if not active:
                    break
                outputs = self._generate_many([(e.trajectory, str(e.next_role)) for e in active])
                for episode, (output, seconds) in zip(active, outputs, strict=True):
                    episode.feed(str(episode.next_role), output, seconds, self.renderer.roles)
            runs.extend(episode.result() for episode in episodes)
        return runs

    # -- single step ----------------------------------------------------------------------------------------------

    def step(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] = (),
    ) -> AgentAction:
        """The next action after an OpenAI conversation: tool calls to run (with the thought) or the final answer.

        After `max_steps` reasoner turns (or `max_calls` calls) in the conversation the summarizer answers without
        asking the reasoner.
        """
        cfg = self.config
        trajectory = messages_to_trajectory(
            messages, tools, reasoner=cfg.reasoner, executor=cfg.executor, summarizer=cfg.summarizer
        )
        seconds: dict[str, float] = {}

        def generate(role: str) -> str | AgentFailure:
            output, spent = self._generate_many([(trajectory, role)])[0]
            seconds[role] = seconds.get(role, 0.0) + spent
            return output

        reasoner_turns = sum(1 for turn in trajectory.turns if turn.role == cfg.reasoner)
        executed = sum(len(turn.calls) for turn in trajectory.turns)
        thought: str | None = None
        if reasoner_turns >= cfg.max_steps or executed >= cfg.max_calls:
            next_role = cfg.summarizer
        else:
            text = generate(cfg.reasoner)
            if isinstance(text, AgentFailure):
                return AgentAction(None, [], None, text, seconds)
            parsed = parse_reasoner(text, [r for r in self.renderer.roles if r != cfg.reasoner])
            if isinstance(parsed, ParseFailure):
                return AgentAction(None, [], None, AgentFailure(cfg.reasoner, parsed.reason, text), seconds)
            thought, next_role = parsed
        trajectory.turns.append(Turn(role=cfg.reasoner, thought=thought, next_role=next_role))
        text = generate(next_role)
        if isinstance(text, AgentFailure):
            return AgentAction(thought, [], None, text, seconds)
        if next_role == cfg.executor:
            calls = parse_calls(text, trajectory.tools)
            if isinstance(calls, ParseFailure):
                return AgentAction(thought, [], None, AgentFailure(cfg.executor, calls.reason, text), seconds)
            for n, call in enumerate(calls, start=executed + 1):
                call.id = f"call_{n}"
            return AgentAction(thought, calls, None, None, seconds)
        if next_role == cfg.summarizer and not text:
            return AgentAction(thought, [], None, AgentFailure(cfg.summarizer, "empty answer"), seconds)
        return AgentAction(thought, [], text, None, seconds)
