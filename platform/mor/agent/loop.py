"""The role-gated agent: Reasoner → Executor → observation → Reasoner → … → Summarizer, with step limits.

The gate's policy is `mor.agent.gate.RoleGate` (the serving runtime drives the same one); this module generates the
role turns and runs the executor's calls. Bad role output never raises: it ends the episode as an `AgentFailure`
recorded against the role.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mor.agent.gate import (
    AgentFailure,
    Finish,
    GatePolicy,
    Generate,
    RoleGate,
    RunCalls,
    add_observations,
    last_thought,
)
from mor.agent.generator import BatchRoleGenerator, RoleGenerator
from mor.agent.messages import messages_to_trajectory, tool_calls_message
from mor.agent.parse import clean_output
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

    def policy(self) -> GatePolicy:
        """The role gate's policy."""
        return GatePolicy(
            reasoner=self.reasoner,
            executor=self.executor,
            summarizer=self.summarizer,
            max_steps=self.max_steps,
            max_calls=self.max_calls,
        )


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
    """One episode: the trajectory, the gate's next action, and the calls run so far."""

    def __init__(self, task: AgentTask, gate: RoleGate, execute_tool: ExecuteTool) -> None:
        offered = [tool if isinstance(tool, Tool) else Tool.from_openai(dict(tool)) for tool in task.tools]
        turns = ([Turn(role="system", content=task.system)] if task.system else []) + [
            Turn(role="user", content=task.query)
        ]
        self.trajectory = Trajectory(id=task.id, tools=offered, turns=turns, metadata=TrajectoryMeta(source="agent"))
        self.gate = gate
        self.execute_tool = execute_tool
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.calls: list[ToolCall] = []
        self._settle(gate.begin(self.trajectory))

    @property
    def next_role(self) -> str | None:
        """The role to generate next (None once the episode has ended)."""
        return self.action.role if isinstance(self.action, Generate) else None

    def feed(self, role: str, output: str | AgentFailure, seconds: float) -> None:
        """Take the output of `role` (or its failure) and move the gate on."""
        self.seconds[role] = self.seconds.get(role, 0.0) + seconds
        self.counts[role] = self.counts.get(role, 0) + 1
        self._settle(self.gate.after(self.trajectory, role, output))

    def _settle(self, action: Generate | RunCalls | Finish) -> None:
        """Run the executor's calls until the gate asks for a role or ends the episode."""
        while isinstance(action, RunCalls):
            self.calls.extend(action.calls)
            add_observations(self.trajectory, action.calls, [self._run(call) for call in action.calls])
            action = self.gate.begin(self.trajectory)
        self.action = action

    def _run(self, call: ToolCall) -> str:
        try:
            observation = self.execute_tool(call.name, dict(call.arguments))
        except Exception as error:  # the environment's failure is an observation, not a crash
            observation = {"error": f"{type(error).__name__}: {error}"}
        return _observation_text(observation)

    def result(self) -> AgentRun:
        finish = self.action if isinstance(self.action, Finish) else Finish(None)
        return AgentRun(
            trajectory=self.trajectory,
            calls=self.calls,
            answer=finish.answer,
            failures=[finish.failure] if finish.failure is not None else [],
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
        missing = [
            name
            for name in (self.config.reasoner, self.config.executor, self.config.summarizer)
            if name not in self.renderer.role_index
        ]
        if missing:
            raise ValueError(
                f"agent roles {missing} are not among the model's roles {list(roles)}; set AgentConfig(reasoner=..., "
                "executor=..., summarizer=...) to role names the model was trained with"
            )
        self.gate = RoleGate(self.config.policy(), self.renderer.roles)

    # -- role turns -----------------------------------------------------------------------------------------------

    def _decode(self, role: str, new_ids: list[int]) -> str | AgentFailure:
        stop = self.renderer.end_ids
        finished = len(new_ids) >= len(stop) and new_ids[-len(stop) :] == stop
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
                results[index] = (
                    AgentFailure(
                        role,
                        f"context too long: {len(prompt)} prompt tokens + {budget} new > max_context_tokens {limit}",
                    ),
                    0.0,
                )
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
                outputs = [
                    self.generator.generate(ids, roles, role, max_new_tokens=budget, stop_ids=stop)
                    for (ids, roles, role), budget in zip(prompts, budgets, strict=True)
                ]
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
            episodes = [_Episode(task, self.gate, execute_tool) for task in tasks[first : first + batch_size]]
            while True:
                active = [episode for episode in episodes if episode.next_role is not None]
                if not active:
                    break
                outputs = self._generate_many([(e.trajectory, str(e.next_role)) for e in active])
                for episode, (output, seconds) in zip(active, outputs, strict=True):
                    episode.feed(str(episode.next_role), output, seconds)
            runs.extend(episode.result() for episode in episodes)
        return runs

    # -- single step ----------------------------------------------------------------------------------------------

    def step(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] = (),
    ) -> AgentAction:
        """The next action after an OpenAI conversation: tool calls to run (with the thought) or the final answer.

        The role gate runs from the conversation's end until it asks for calls or ends (`mor.agent.gate`).
        """
        cfg = self.config
        trajectory = messages_to_trajectory(
            messages, tools, reasoner=cfg.reasoner, executor=cfg.executor, summarizer=cfg.summarizer
        )
        start = len(trajectory.turns)
        seconds: dict[str, float] = {}
        action = self.gate.begin(trajectory)
        while isinstance(action, Generate):
            output, spent = self._generate_many([(trajectory, action.role)])[0]
            seconds[action.role] = seconds.get(action.role, 0.0) + spent
            action = self.gate.after(trajectory, action.role, output)
        thought = last_thought(trajectory, cfg.reasoner, since=start)
        if isinstance(action, RunCalls):
            return AgentAction(action.thought, action.calls, None, None, seconds)
        return AgentAction(thought, [], action.answer, action.failure, seconds)
