"""One role gate: the same role outputs give the same trajectory through the evaluation loop and the served runtime.

Both drivers get their role turns from the same script: the evaluation agent through a role generator, the serving
runtime through an engine that replays the script token by token through each job's decoding constraint (so the
script must also be output the constrained decoder accepts). The client side of the served agent runs the returned
calls with the same toolbox and sends their results back, as an OpenAI client would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Sequence
from typing import Any

import pytest

from mor.agent import Agent, AgentConfig
from mor.data import DEFAULT_ROLES, SyntheticDataset, Trajectory, Turn
from mor.serve import AgentRuntime, ServeArgs
from mor.serve.engine import GenerationJob, GenerationResult
from mor.serve.protocol import parse_chat_request


class Script:
    """Each role's outputs in order (the last one repeats)."""

    def __init__(self, tokenizer: Any, outputs: dict[str, list[str]]) -> None:
        self.tokenizer = tokenizer
        self.outputs = {role: list(texts) for role, texts in outputs.items()}
        self.roles: list[str] = []

    def tokens(self, role: str, stop_ids: Sequence[int]) -> list[int]:
        self.roles.append(role)
        texts = self.outputs[role]
        text = texts.pop(0) if len(texts) > 1 else texts[0]
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + list(stop_ids)


class ScriptedGenerator:
    """The evaluation side's role generator."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        return self.script.tokens(role, stop_ids)[:max_new_tokens]


class ScriptedEngine:
    """The serving side's engine: every token goes through the job's constraint, which must allow it."""

    def __init__(self, script: Script, roles: Sequence[str]) -> None:
        self.script = script
        self.roles = list(roles)

    def submit(self, job: GenerationJob) -> concurrent.futures.Future[GenerationResult]:
        produced: list[int] = []
        for token in self.script.tokens(self.roles[job.role], job.stop_ids)[: job.max_new_tokens]:
            if job.constraint is not None:
                mask = job.constraint.allowed(job.max_new_tokens - len(produced))
                assert mask is None or bool(mask[token]), f"the constraint refuses token {token} of the script"
                job.constraint.advance(token)
            produced.append(token)
            if job.on_token is not None:
                job.on_token(token)
            if job.constraint is not None and job.constraint.done:
                break
        future: concurrent.futures.Future[GenerationResult] = concurrent.futures.Future()
        future.set_result(GenerationResult(produced, "stop", len(job.input_ids), 0.0, 0.0))
        return future

    async def generate(self, job: GenerationJob) -> GenerationResult:
        return self.submit(job).result()


def _outputs(dataset: SyntheticDataset) -> tuple[Trajectory, dict[str, list[str]]]:
    gold = next(t for t in dataset.test if len(t.calls) >= 1)
    call = gold.calls[0]
    executor = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return gold, {
        "reasoner": [f"I need {call.name}. Next: executor", "Once more to be sure. Next: executor", "Next: summarizer"],
        "executor": [executor],
        "summarizer": ["Here is what I found."],
    }


def _evaluated(
    dataset: SyntheticDataset, tokenizer: Any, gold: Trajectory, outputs: dict[str, list[str]], max_steps: int
) -> tuple[Trajectory, list[str]]:
    script = Script(tokenizer, outputs)
    agent = Agent(ScriptedGenerator(script), tokenizer, config=AgentConfig(max_steps=max_steps, max_calls=8))
    run = agent.run(gold.query or "", gold.tools, dataset.toolbox().execute)
    assert run.failures == [], run.failures
    return run.trajectory, script.roles


def _served(
    dataset: SyntheticDataset, tokenizer: Any, gold: Trajectory, outputs: dict[str, list[str]], max_steps: int
) -> tuple[Trajectory, list[str]]:
    script = Script(tokenizer, outputs)
    args = ServeArgs(model_uri="unused", max_steps=max_steps, max_calls=8)
    runtime = AgentRuntime(
        tokenizer=tokenizer,
        roles=DEFAULT_ROLES,
        engine=ScriptedEngine(script, DEFAULT_ROLES),
        args=args,
        model_name="m",
        logits_size=len(tokenizer),
        max_positions=None,
    )
    box = dataset.toolbox()
    messages: list[dict[str, Any]] = [{"role": "user", "content": gold.query}]
    tools = [tool.to_openai() for tool in gold.tools]

    async def converse() -> Trajectory:
        for _ in range(10):
            body = {"model": "m", "messages": messages, "tools": tools}
            plan = runtime.prepare(parse_chat_request(json.dumps(body).encode()))
            decision = await runtime.decide(plan)
            if decision.kind == "tool_calls":
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": decision.thought,
                        "tool_calls": [
                            {
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                            }
                            for c in decision.calls
                        ],
                    }
                )
                for call in decision.calls:
                    observation = box.execute(call.name, dict(call.arguments))
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": call.id,
                            "content": json.dumps(observation, ensure_ascii=False, default=str)
                            if not isinstance(observation, str)
                            else observation,
                        }
                    )
                continue
            assert decision.kind == "answer", decision.kind
            answer = await runtime.answer(plan, decision)
            final = decision.trajectory.model_copy(deep=True)
            final.turns.append(Turn(role="summarizer", content=answer.content))
            return final
        raise AssertionError("the served agent never answered")

    return asyncio.run(converse()), script.roles


def _turns(trajectory: Trajectory) -> list[tuple[Any, ...]]:
    return [
        (
            turn.role,
            turn.thought,
            turn.next_role,
            turn.content,
            turn.call_id,
            [(call.id, call.name, call.arguments) for call in turn.calls],
        )
        for turn in trajectory.turns
    ]


@pytest.mark.parametrize("max_steps", [8, 2], ids=["reasoner_ends", "step_limit_hands_over"])
def test_evaluation_and_serving_give_the_same_trajectory(dataset: SyntheticDataset, tokenizer, max_steps: int) -> None:
    gold, outputs = _outputs(dataset)
    evaluated, evaluated_roles = _evaluated(dataset, tokenizer, gold, outputs, max_steps)
    served, served_roles = _served(dataset, tokenizer, gold, outputs, max_steps)
    assert evaluated_roles == served_roles
    assert _turns(served) == _turns(evaluated)
    calls = [call.id for turn in evaluated.turns for call in turn.calls]
    assert calls == ["call_1", "call_2"]
    if max_steps == 2:  # the third reasoner turn is the gate's hand-over, not the model's
        assert evaluated_roles == ["reasoner", "executor", "reasoner", "executor", "summarizer"]
