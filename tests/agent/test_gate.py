"""The role gate's policy, on trajectories alone (no model): what comes after each role's output."""

from __future__ import annotations

import pytest

from mor.agent.gate import AgentFailure, Finish, GatePolicy, Generate, RoleGate, RunCalls, add_observations
from mor.data import Tool, ToolCall, Trajectory, Turn

ROLES = ["reasoner", "executor", "summarizer", "planner"]
WEATHER = Tool(
    name="weather",
    description="Weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _trajectory() -> Trajectory:
    return Trajectory(id="t", tools=[WEATHER], turns=[Turn(role="user", content="Weather in Oslo?")])


def test_a_full_episode_numbers_calls_over_the_conversation() -> None:
    gate, trajectory = RoleGate(GatePolicy(), ROLES), _trajectory()
    assert gate.begin(trajectory) == Generate("reasoner")
    assert gate.after(trajectory, "reasoner", "Look it up. Next: executor") == Generate("executor")
    action = gate.after(
        trajectory,
        "executor",
        '[{"name": "weather", "arguments": {"city": "Oslo"}}, {"name": "weather", "arguments": {"city": "Bergen"}}]',
    )
    assert isinstance(action, RunCalls) and action.thought == "Look it up."
    assert [call.id for call in action.calls] == ["call_1", "call_2"]
    add_observations(trajectory, action.calls, ['{"temp": 3}', '{"temp": 5}'])
    assert gate.begin(trajectory) == Generate("reasoner")
    gate.after(trajectory, "reasoner", "One more. Next: executor")
    again = gate.after(trajectory, "executor", '{"name": "weather", "arguments": {"city": "Tromsø"}}')
    assert isinstance(again, RunCalls) and [call.id for call in again.calls] == ["call_3"]
    add_observations(trajectory, again.calls, ['{"temp": -2}'])
    gate.begin(trajectory)
    assert gate.after(trajectory, "reasoner", "Done. Next: summarizer") == Generate("summarizer")
    assert gate.after(trajectory, "summarizer", "3, 5 and -2 degrees.") == Finish("3, 5 and -2 degrees.")
    assert [turn.role for turn in trajectory.turns] == [
        "user",
        "reasoner",
        "executor",
        "observation",
        "observation",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
    ]


def test_a_custom_roles_text_goes_back_to_the_reasoner() -> None:
    gate, trajectory = RoleGate(GatePolicy(), ROLES), _trajectory()
    gate.begin(trajectory)
    assert gate.after(trajectory, "reasoner", "Plan first. Next: planner") == Generate("planner")
    assert gate.after(trajectory, "planner", "1. look up Oslo") == Generate("reasoner")
    assert trajectory.turns[-1] == Turn(role="planner", content="1. look up Oslo")


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (GatePolicy(max_steps=1), "step limit"),
        (GatePolicy(max_calls=1), "call limit"),
    ],
)
def test_limits_hand_over_to_the_summarizer(policy: GatePolicy, reason: str) -> None:
    gate, trajectory = RoleGate(policy, ROLES), _trajectory()
    gate.begin(trajectory)
    gate.after(trajectory, "reasoner", "Next: executor")
    action = gate.after(trajectory, "executor", '{"name": "weather", "arguments": {"city": "Oslo"}}')
    assert isinstance(action, RunCalls)
    add_observations(trajectory, action.calls, ["{}"])
    assert gate.begin(trajectory) == Generate("summarizer")
    hand_over = trajectory.turns[-1]
    assert (hand_over.role, hand_over.thought, hand_over.next_role) == ("reasoner", None, "summarizer")
    without_summarizer = RoleGate(policy, ["reasoner", "executor"])
    limited = without_summarizer.begin(trajectory)
    assert isinstance(limited, Finish) and limited.limit and limited.failure is not None
    assert limited.failure.role == "reasoner" and reason in limited.failure.reason


def test_choosing_the_executor_with_no_call_left_hands_over() -> None:
    gate, trajectory = RoleGate(GatePolicy(max_calls=1, max_steps=5), ROLES), _trajectory()
    trajectory.turns.append(
        Turn(role="executor", calls=[ToolCall(name="weather", arguments={"city": "Oslo"}, id="call_1")])
    )  # made in an earlier message
    assert gate.after(trajectory, "reasoner", "Again. Next: executor") == Generate("summarizer")


@pytest.mark.parametrize(
    ("role", "output", "reason"),
    [
        ("reasoner", "no role named here", "Next: <role>"),
        ("executor", '{"name": "teleport", "arguments": {}}', "unknown function"),
        ("summarizer", "", "empty answer"),
    ],
)
def test_unusable_output_ends_the_episode_as_the_roles_failure(role: str, output: str, reason: str) -> None:
    gate, trajectory = RoleGate(GatePolicy(), ROLES), _trajectory()
    before = list(trajectory.turns)
    action = gate.after(trajectory, role, output)
    assert isinstance(action, Finish) and action.answer is None and not action.limit
    assert action.failure is not None and action.failure.role == role and reason in action.failure.reason
    assert trajectory.turns == before
    failed = AgentFailure("executor", "no end marker")
    assert gate.after(trajectory, "executor", failed) == Finish(None, failed)


def test_the_reasoner_may_only_name_allowed_roles() -> None:
    gate, trajectory = RoleGate(GatePolicy(), ROLES), _trajectory()
    refused = gate.after(trajectory, "reasoner", "Next: executor", allowed=["summarizer"])
    assert isinstance(refused, Finish) and refused.failure is not None
    assert gate.begin(trajectory, allowed=[]) == Generate("summarizer")


def test_the_three_gate_roles_must_differ_and_the_reasoner_exist() -> None:
    with pytest.raises(ValueError, match="three different roles"):
        RoleGate(GatePolicy(summarizer="executor"), ROLES)
    with pytest.raises(ValueError, match="starts with the reasoner"):
        RoleGate(GatePolicy(), ["executor", "summarizer"])
