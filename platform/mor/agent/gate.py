"""The role gate: one state machine deciding which role speaks next, shared by evaluation and serving.

Pure: a trajectory and a role's output go in, the gate appends that output's turn to the trajectory and says what
comes next. It generates nothing and runs no tool: the evaluation loop (`mor.agent.loop`) drives it synchronously
and runs the calls itself; the serving runtime (`mor.serve.runtime`) drives it asynchronously and returns the calls
to the client, whose next request carries their results.

The policy, in one place:

* A turn starts with the reasoner, which names the next role: the executor, the summarizer or a custom role.
* The executor's calls get ids `call_<n>`, numbered over the whole conversation (1, 2, ...), so the same outputs
  give the same trajectory in evaluation and serving.
* A custom role's text goes back to the reasoner.
* The summarizer's text is the answer and ends the episode.
* Limits hand over to the summarizer: once the conversation has `max_steps` reasoner turns or `max_calls` calls,
  or the reasoner picks the executor when no call is left, the summarizer answers (a reasoner turn without a
  thought records the hand-over). Without a summarizer role the limit is the reasoner's failure.
* Unusable output (an unparsable reasoner choice or executor call, an empty answer, a role's generation failure)
  ends the episode as that role's failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mor.agent.parse import ParseFailure, parse_calls, parse_reasoner
from mor.data.schema import Tool, ToolCall, Trajectory, Turn

__all__ = [
    "Action",
    "AgentFailure",
    "Finish",
    "GatePolicy",
    "Generate",
    "RoleGate",
    "RunCalls",
    "add_observations",
    "last_thought",
]


@dataclass(frozen=True)
class AgentFailure:
    """A role produced unusable output (or the gate hit a limit it cannot hand over)."""

    role: str
    reason: str
    output: str = ""


@dataclass(frozen=True)
class GatePolicy:
    """Role names of the gate and its limits (per conversation)."""

    reasoner: str = "reasoner"
    executor: str = "executor"
    summarizer: str = "summarizer"
    max_steps: int = 8
    max_calls: int = 8


@dataclass(frozen=True)
class Generate:
    """Generate the next turn of `role`."""

    role: str


@dataclass(frozen=True)
class RunCalls:
    """The executor's calls (ids assigned, already in the trajectory): run them, then `RoleGate.begin` again."""

    calls: list[ToolCall]
    thought: str | None


@dataclass(frozen=True)
class Finish:
    """The episode ends: with the summarizer's answer, or with a role's failure (`limit`: a limit was reached with
    no summarizer to hand over to)."""

    answer: str | None
    failure: AgentFailure | None = None
    limit: bool = False


Action = Generate | RunCalls | Finish


class RoleGate:
    """The gate over the roles a model was trained with (see the module docstring for the policy)."""

    def __init__(self, policy: GatePolicy, roles: Sequence[str]) -> None:
        self.policy = policy
        self.roles = list(roles)
        if policy.reasoner not in self.roles:
            raise ValueError(f"roles: {self.roles} has no {policy.reasoner!r}; the role gate starts with the reasoner")
        names = (policy.reasoner, policy.executor, policy.summarizer)
        if len(set(names)) != 3:
            raise ValueError(f"role gate: reasoner, executor and summarizer must be three different roles, got {names}")

    def _count(self, trajectory: Trajectory) -> tuple[int, int]:
        """Reasoner turns and calls so far."""
        reasoner = sum(1 for turn in trajectory.turns if turn.role == self.policy.reasoner)
        return reasoner, sum(len(turn.calls) for turn in trajectory.turns)

    def _hand_over(self, trajectory: Trajectory, reason: str) -> Action:
        """The summarizer answers (recorded as a reasoner turn without a thought), or the reasoner fails."""
        policy = self.policy
        if policy.summarizer not in self.roles:
            return Finish(None, AgentFailure(policy.reasoner, reason), limit=True)
        trajectory.turns.append(Turn(role=policy.reasoner, thought=None, next_role=policy.summarizer))
        return Generate(policy.summarizer)

    def begin(self, trajectory: Trajectory, allowed: Sequence[str] | None = None) -> Action:
        """The first action of a turn: after the user's message, the calls' results, or a custom role's text.

        `allowed` are the roles the reasoner may hand over to (default: every other role); none left means the
        summarizer answers directly.
        """
        policy = self.policy
        reasoner_turns, calls = self._count(trajectory)
        if reasoner_turns >= policy.max_steps:
            return self._hand_over(trajectory, f"step limit reached ({policy.max_steps} reasoner turns)")
        if calls >= policy.max_calls:
            return self._hand_over(trajectory, f"call limit reached ({policy.max_calls} calls)")
        if allowed is not None and not list(allowed):
            return self._hand_over(trajectory, "no role to hand over to")
        return Generate(policy.reasoner)

    def next_roles(self, allowed: Sequence[str] | None = None) -> list[str]:
        """The roles the reasoner may name: `allowed`, or every role but the reasoner."""
        if allowed is not None:
            return list(allowed)
        return [role for role in self.roles if role != self.policy.reasoner]

    def after(
        self,
        trajectory: Trajectory,
        role: str,
        output: str | AgentFailure,
        allowed: Sequence[str] | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> Action:
        """Append `role`'s output to `trajectory` and say what comes next (`tools`: those the executor may call,
        default the trajectory's)."""
        policy = self.policy
        if isinstance(output, AgentFailure):
            return Finish(None, output)
        if role == policy.reasoner:
            parsed = parse_reasoner(output, self.next_roles(allowed))
            if isinstance(parsed, ParseFailure):
                return Finish(None, AgentFailure(role, parsed.reason, output))
            thought, chosen = parsed
            if chosen == policy.executor and self._count(trajectory)[1] >= policy.max_calls:
                return self._hand_over(trajectory, f"call limit reached ({policy.max_calls} calls)")
            trajectory.turns.append(Turn(role=role, thought=thought, next_role=chosen))
            return Generate(chosen)
        if role == policy.executor:
            calls = parse_calls(output, trajectory.tools if tools is None else tools)
            if isinstance(calls, ParseFailure):
                return Finish(None, AgentFailure(role, calls.reason, output))
            first = self._count(trajectory)[1] + 1
            for number, call in enumerate(calls, start=first):
                call.id = f"call_{number}"
            trajectory.turns.append(Turn(role=role, calls=calls))
            return RunCalls(calls, last_thought(trajectory, policy.reasoner))
        if role == policy.summarizer:
            if not output:
                return Finish(None, AgentFailure(role, "empty answer"))
            trajectory.turns.append(Turn(role=role, content=output))
            return Finish(output)
        trajectory.turns.append(Turn(role=role, content=output))  # a custom role: back to the reasoner
        return self.begin(trajectory, allowed)


def last_thought(trajectory: Trajectory, reasoner: str, since: int = 0) -> str | None:
    """The thought of the last reasoner turn at or after turn `since` (None when there is none or it has none)."""
    for turn in reversed(trajectory.turns[since:]):
        if turn.role == reasoner:
            return turn.thought
    return None


def add_observations(trajectory: Trajectory, calls: Sequence[ToolCall], observations: Sequence[str]) -> None:
    """Append the results of `calls` (text, in call order) as observation turns."""
    for call, observation in zip(calls, observations, strict=True):
        trajectory.turns.append(Turn(role="observation", content=observation, call_id=call.id))
