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

from mor.agent.generator import RoleGenerator
from mor.agent.messages import messages_to_trajectory, tool_calls_message
from mor.agent.parse import ParseFailure, clean_output, parse_calls, parse_reasoner
from mor.data.render import Renderer
from mor.data.schema import DEFAULT_ROLES, Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["AgentConfig", "AgentFailure", "AgentRun", "AgentAction", "Agent", "ExecuteTool"]

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

    @property
    def failed_role(self) -> str | None:
        """The role of the first failure, None when every turn was usable."""
        return self.failures[0].role if self.failures else None

    @property
    def ok(self) -> bool:
        """Whether the run ended with an answer and no failure."""
        return self.answer is not None and not self.failures


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

    # -- one role turn --------------------------------------------------------------------------------------------

    def _generate(self, trajectory: Trajectory, role: str, seconds: dict[str, float]) -> str | AgentFailure:
        prompt = self.renderer.prompt(trajectory, role)
        limit = self.config.max_context_tokens
        if limit is not None and len(prompt) + self.config.budget(role) > limit:
            return AgentFailure(role, f"context too long: {len(prompt)} prompt tokens + {self.config.budget(role)} "
                                      f"new > max_context_tokens {limit}")
        start = time.perf_counter()
        new_ids = self.generator.generate(
            prompt.input_ids, prompt.role_ids, role,
            max_new_tokens=self.config.budget(role), stop_ids=self.renderer.end_ids,
        )
        seconds[role] = seconds.get(role, 0.0) + time.perf_counter() - start
        stop = self.renderer.end_ids
        finished = len(new_ids) >= len(stop) and new_ids[-len(stop):] == stop
        text = self.tokenizer.decode(new_ids[: -len(stop)] if finished else new_ids, skip_special_tokens=True)
        if not finished and clean_output(text) == text.strip():
            return AgentFailure(role, f"no end marker within {self.config.budget(role)} tokens", text)
        return clean_output(text)

    def _reason(self, trajectory: Trajectory, seconds: dict[str, float]) -> tuple[str | None, str] | AgentFailure:
        cfg = self.config
        text = self._generate(trajectory, cfg.reasoner, seconds)
        if isinstance(text, AgentFailure):
            return text
        parsed = parse_reasoner(text, [r for r in self.renderer.roles if r != cfg.reasoner])
        if isinstance(parsed, ParseFailure):
            return AgentFailure(cfg.reasoner, parsed.reason, text)
        return parsed

    def _execute(self, trajectory: Trajectory, seconds: dict[str, float]) -> tuple[list[ToolCall], str] | AgentFailure:
        text = self._generate(trajectory, self.config.executor, seconds)
        if isinstance(text, AgentFailure):
            return text
        calls = parse_calls(text, trajectory.tools)
        if isinstance(calls, ParseFailure):
            return AgentFailure(self.config.executor, calls.reason, text)
        return calls, text

    # -- full episode ---------------------------------------------------------------------------------------------

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
        cfg = self.config
        offered = [tool if isinstance(tool, Tool) else Tool.from_openai(dict(tool)) for tool in tools]
        turns = ([Turn(role="system", content=system)] if system else []) + [Turn(role="user", content=query)]
        trajectory = Trajectory(id=trajectory_id, tools=offered, turns=turns, metadata=TrajectoryMeta(source="agent"))
        seconds: dict[str, float] = {}
        counts: dict[str, int] = {}
        failures: list[AgentFailure] = []
        calls: list[ToolCall] = []
        answer: str | None = None
        started = time.perf_counter()
        for _ in range(cfg.max_steps):
            counts[cfg.reasoner] = counts.get(cfg.reasoner, 0) + 1
            decision = self._reason(trajectory, seconds)
            if isinstance(decision, AgentFailure):
                failures.append(decision)
                break
            thought, next_role = decision
            trajectory.turns.append(Turn(role=cfg.reasoner, thought=thought, next_role=next_role))
            counts[next_role] = counts.get(next_role, 0) + 1
            if next_role == cfg.summarizer:
                text = self._generate(trajectory, cfg.summarizer, seconds)
                if isinstance(text, AgentFailure) or not text:
                    failures.append(text if isinstance(text, AgentFailure)
                                    else AgentFailure(cfg.summarizer, "empty answer"))
                    break
                trajectory.turns.append(Turn(role=cfg.summarizer, content=text))
                answer = text
                break
            if next_role == cfg.executor:
                if len(calls) >= cfg.max_calls:
                    failures.append(AgentFailure(cfg.reasoner, f"call limit reached ({cfg.max_calls} calls)"))
                    break
                outcome = self._execute(trajectory, seconds)
                if isinstance(outcome, AgentFailure):
                    failures.append(outcome)
                    trajectory.turns.append(Turn(role=cfg.executor, content=outcome.output))
                    trajectory.turns.append(Turn(role="observation", content=_observation_text(
                        {"error": f"the call could not be parsed: {outcome.reason}"})))
                    continue
                made, _ = outcome
                for call in made:
                    call.id = f"call_{len(calls) + 1}"
                    calls.append(call)
                trajectory.turns.append(Turn(role=cfg.executor, calls=made))
                for call in made:
                    try:
                        observation = execute_tool(call.name, dict(call.arguments))
                    except Exception as error:  # the environment's failure is an observation, not a crash
                        observation = {"error": f"{type(error).__name__}: {error}"}
                    trajectory.turns.append(
                        Turn(role="observation", content=_observation_text(observation), call_id=call.id)
                    )
                continue
            text = self._generate(trajectory, next_role, seconds)  # a custom role: its text goes to the reasoner
            if isinstance(text, AgentFailure):
                failures.append(text)
                break
            trajectory.turns.append(Turn(role=next_role, content=text))
        else:
            failures.append(AgentFailure(cfg.reasoner, f"step limit reached ({cfg.max_steps} reasoner turns)"))
        return AgentRun(
            trajectory=trajectory,
            calls=calls,
            answer=answer,
            failures=failures,
            role_seconds=seconds,
            role_turns=counts,
            latency_s=time.perf_counter() - started,
        )

    # -- single step ----------------------------------------------------------------------------------------------

    def step(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] = (),
    ) -> AgentAction:
        """The next action after an OpenAI conversation: tool calls to run (with the thought) or the final answer.

        After `max_steps` reasoner turns in the conversation the summarizer answers without asking the reasoner.
        """
        cfg = self.config
        trajectory = messages_to_trajectory(
            messages, tools, reasoner=cfg.reasoner, executor=cfg.executor, summarizer=cfg.summarizer
        )
        seconds: dict[str, float] = {}
        reasoner_turns = sum(1 for turn in trajectory.turns if turn.role == cfg.reasoner)
        executed = sum(len(turn.calls) for turn in trajectory.turns)
        thought: str | None = None
        if reasoner_turns >= cfg.max_steps or executed >= cfg.max_calls:
            next_role = cfg.summarizer
        else:
            decision = self._reason(trajectory, seconds)
            if isinstance(decision, AgentFailure):
                return AgentAction(None, [], None, decision, seconds)
            thought, next_role = decision
        trajectory.turns.append(Turn(role=cfg.reasoner, thought=thought, next_role=next_role))
        if next_role == cfg.executor:
            outcome = self._execute(trajectory, seconds)
            if isinstance(outcome, AgentFailure):
                return AgentAction(thought, [], None, outcome, seconds)
            made, _ = outcome
            for n, call in enumerate(made, start=executed + 1):
                call.id = f"call_{n}"
            return AgentAction(thought, made, None, None, seconds)
        text = self._generate(trajectory, next_role, seconds)
        if isinstance(text, AgentFailure):
            return AgentAction(thought, [], None, text, seconds)
        if next_role == cfg.summarizer and not text:
            return AgentAction(thought, [], None, AgentFailure(cfg.summarizer, "empty answer"), seconds)
        return AgentAction(thought, [], text, None, seconds)
