from __future__ import annotations

from collections.abc import Sequence

import pytest

from mor.agent import Agent, AgentConfig, AgentTask, ReplayGenerator
from mor.data import DEFAULT_ROLES, Renderer, SyntheticDataset, Trajectory, Turn


class Scripted:
    """A role generator that always writes the same text for a role (a fixed policy, for the gate's limits)."""

    def __init__(self, tokenizer, outputs: dict[str, str]) -> None:
        self.tokenizer = tokenizer
        self.outputs = outputs
        self.prompts: list[tuple[str, int]] = []

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        self.prompts.append((role, len(input_ids)))
        assert len(role_ids) == len(input_ids)
        ids = self.tokenizer(self.outputs[role], add_special_tokens=False)["input_ids"]
        return (ids + list(stop_ids))[:max_new_tokens]


def _by_category(dataset: SyntheticDataset) -> dict[str, Trajectory]:
    out: dict[str, Trajectory] = {}
    for trajectory in dataset.test:
        out.setdefault(trajectory.metadata.category or "", trajectory)
    return out


def test_replaying_the_reference_reproduces_every_kind_of_episode(dataset: SyntheticDataset, tokenizer) -> None:
    renderer = Renderer(tokenizer, DEFAULT_ROLES)
    agent = Agent(ReplayGenerator(dataset.test, renderer), tokenizer)
    box = dataset.toolbox()
    examples = _by_category(dataset)
    assert set(examples) == {"single", "multi", "no_tool", "recovery", "give_up"}
    for category, gold in examples.items():
        run = agent.run(gold.query or "", gold.tools, box.execute, trajectory_id=gold.id)
        assert run.ok and run.failed_role is None, (category, run.failures)
        assert [c.key() for c in run.calls] == [c.key() for c in gold.calls], category
        assert run.answer == gold.answer
        assert [t.role for t in run.trajectory.turns] == [t.role for t in gold.turns]
        assert run.role_turns["reasoner"] == sum(t.role == "reasoner" for t in gold.turns)
        assert set(run.role_seconds) <= set(DEFAULT_ROLES) and run.latency_s > 0


def test_a_bad_executor_output_is_a_recorded_failure(dataset: SyntheticDataset, tokenizer) -> None:
    """Unusable output ends the episode as the role's failure (as the served agent answers it with an error)."""
    gold = _by_category(dataset)["single"]
    broken = gold.model_copy(deep=True)
    index = next(i for i, t in enumerate(broken.turns) if t.role == "executor")
    broken.turns[index] = Turn(role="executor", content='{"name": "get_weather", "arguments": {"city": ')
    agent = Agent(ReplayGenerator([broken], Renderer(tokenizer, DEFAULT_ROLES)), tokenizer)
    run = agent.run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.failed_role == "executor" and "not valid JSON" in run.failures[0].reason
    assert len(run.failures) == 1 and run.calls == [] and run.answer is None
    assert [t.role for t in run.trajectory.turns] == [t.role for t in gold.turns[:index]]


def test_unknown_function_and_the_limits_hand_over_to_the_summarizer(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _by_category(dataset)["single"]
    scripted = Scripted(
        tokenizer,
        {
            "reasoner": "I will call a tool. Next: executor",
            "executor": '{"name": "' + gold.calls[0].name + '", "arguments": ' + '{"x": 1}}',
            "summarizer": "I could not finish.",
        },
    )
    config = AgentConfig(max_steps=3, max_calls=10)
    run = Agent(scripted, tokenizer, config=config).run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.failures == [] and run.answer == "I could not finish."
    assert len(run.calls) == 3 and all(
        "error" in (t.content or "") for t in run.trajectory.turns if t.role == "observation"
    )
    assert [role for role, _ in scripted.prompts] == ["reasoner", "executor"] * 3 + ["summarizer"]
    hand_over = run.trajectory.turns[-2]
    assert hand_over.role == "reasoner" and hand_over.thought is None and hand_over.next_role == "summarizer"
    lengths = [n for _, n in scripted.prompts]
    assert lengths == sorted(lengths)  # every prompt extends the previous one
    assert [call.id for call in run.calls] == ["call_1", "call_2", "call_3"]

    wrong = Scripted(tokenizer, {"reasoner": "Next: executor", "executor": '{"name": "teleport", "arguments": {}}'})
    run = Agent(wrong, tokenizer, config=AgentConfig(max_steps=1)).run("hi", gold.tools, dataset.toolbox().execute)
    assert run.failures[0].role == "executor" and "unknown function 'teleport'" in run.failures[0].reason

    scripted.prompts.clear()
    calls_capped = Agent(scripted, tokenizer, config=AgentConfig(max_steps=5, max_calls=2))
    run = calls_capped.run("hi", gold.tools, dataset.toolbox().execute)
    assert len(run.calls) == 2 and run.failures == [] and run.answer == "I could not finish."
    assert [role for role, _ in scripted.prompts] == ["reasoner", "executor"] * 2 + ["summarizer"]


def test_an_environment_exception_becomes_an_observation(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _by_category(dataset)["single"]
    scripted = Scripted(
        tokenizer,
        {
            "reasoner": "Next: executor",
            "summarizer": "Sorry.",
            "executor": '{"name": "' + gold.calls[0].name + '", "arguments": {}}',
        },
    )

    def explode(name: str, arguments: dict) -> dict:
        raise RuntimeError("backend down")

    run = Agent(scripted, tokenizer, config=AgentConfig(max_steps=1)).run("hi", gold.tools, explode)
    observation = next(t for t in run.trajectory.turns if t.role == "observation")
    assert "RuntimeError: backend down" in (observation.content or "")


def test_single_step_api_over_openai_messages(dataset: SyntheticDataset, tokenizer) -> None:
    gold = _by_category(dataset)["single"]
    agent = Agent(ReplayGenerator([gold], Renderer(tokenizer, DEFAULT_ROLES)), tokenizer)
    tools = [tool.to_openai() for tool in gold.tools]
    messages: list[dict] = [{"role": "user", "content": gold.query}]
    action = agent.step(messages, tools)
    assert not action.finished and action.failure is None
    assert [c.key() for c in action.calls] == [c.key() for c in gold.calls]
    message = action.to_message()
    assert message["content"] == gold.turns[1].thought and message["tool_calls"][0]["id"] == "call_1"
    observation = next(t for t in gold.turns if t.role == "observation")
    messages += [message, {"role": "tool", "tool_call_id": "call_1", "content": observation.content}]
    final = agent.step(messages, tools)
    assert final.finished and final.content == gold.answer
    assert final.to_message() == {"role": "assistant", "content": gold.answer}


def test_single_step_forces_the_summarizer_after_the_step_limit(dataset: SyntheticDataset, tokenizer) -> None:
    scripted = Scripted(tokenizer, {"reasoner": "Next: executor", "summarizer": "I stop here."})
    agent = Agent(scripted, tokenizer, config=AgentConfig(max_steps=1))
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
    ]
    action = agent.step(history)
    assert action.finished and action.content == "I stop here." and scripted.prompts[0][0] == "summarizer"


def test_agent_refuses_roles_the_model_lacks(tokenizer) -> None:
    with pytest.raises(ValueError, match="not among the model's roles"):
        Agent(Scripted(tokenizer, {}), tokenizer, roles=["planner", "caller"])


def test_run_batch_equals_runs_one_by_one(dataset: SyntheticDataset, tokenizer) -> None:
    renderer = Renderer(tokenizer, DEFAULT_ROLES)
    agent = Agent(ReplayGenerator(dataset.test, renderer), tokenizer)
    box = dataset.toolbox()
    tasks = [AgentTask(t.query or "", t.tools, id=t.id) for t in dataset.test[:40]]
    batched = agent.run_batch(tasks, box.execute, batch_size=16)
    assert [run.trajectory.id for run in batched] == [task.id for task in tasks]
    for run, gold in zip(batched, dataset.test[:40], strict=False):
        assert run.ok and run.answer == gold.answer and [c.key() for c in run.calls] == [c.key() for c in gold.calls]
    single = agent.run(tasks[5].query, tasks[5].tools, box.execute, trajectory_id=tasks[5].id)
    assert single.trajectory == batched[5].trajectory
    with pytest.raises(ValueError, match="batch_size: got 0"):
        agent.run_batch(tasks, box.execute, batch_size=0)
