"""The role gate inside one request: reasoner → executor (tool calls back to the client) or summarizer (the answer).

`AgentRuntime.prepare` checks a request and turns its messages into the trajectory the model was trained on;
`decide` drives the role gate (`mor.agent.gate`, the same policy the evaluation loop drives): the reasoner, and
the executor when the reasoner picks it (custom roles in between); `answer` runs the summarizer, optionally
streaming its text. Every role turn is one job of the shared `BatchEngine`, so turns of
different requests and roles are decoded in the same forward passes.

Token budgets follow OpenAI: `max_completion_tokens` (or `max_tokens`) bounds every token the request generates,
the reasoner's thought and the executor's calls included, and running out ends the request with
`finish_reason: "length"`. Each turn is also capped per role (the server's `role_max_tokens`, or the request's
own `role_max_tokens` field); a request that sets a budget lets the summarizer's answer take all that is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mor.agent import GatePolicy, RoleGate, messages_to_trajectory
from mor.agent.gate import Generate, RunCalls, last_thought
from mor.agent.parse import clean_output
from mor.data.render import END, Renderer
from mor.data.schema import ToolCall, Trajectory
from mor.serve.args import ServeArgs
from mor.serve.constrain import CallsConstraint, ReasonerConstraint, TextConstraint, TokenConstraint, Vocabulary
from mor.serve.engine import BatchEngine, GenerationJob, GenerationResult, Sampling
from mor.serve.errors import APIError
from mor.serve.protocol import AssistantMessage, ChatRequest
from mor.serve.textstream import TextAssembler
from mor.serve.tools import ToolPlan, check_calls, plan_tools

__all__ = ["AgentRuntime", "Answer", "Decision", "TurnPlan", "Usage"]


@dataclass
class Usage:
    """Token counts of one request over all its role turns (`reasoning` = the reasoner's new tokens)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    by_role: dict[str, int] = field(default_factory=dict)

    def add(self, role: str, result: GenerationResult, *, reasoning: bool) -> None:
        """Count one generation of `role`."""
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += len(result.token_ids)
        if reasoning:
            self.reasoning_tokens += len(result.token_ids)
        self.by_role[role] = self.by_role.get(role, 0) + len(result.token_ids)

    def to_openai(self) -> dict[str, Any]:
        """The `usage` object of a response."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass
class TurnPlan:
    """A checked request: the trajectory so far and what this turn may do."""

    request: ChatRequest
    trajectory: Trajectory
    tools: ToolPlan
    sampling: Sampling
    budget: int
    """Tokens this request may generate in all roles together (`max_completion_tokens` / `max_tokens`)."""
    role_caps: dict[str, int]
    """Tokens one turn of a role may generate at most (the request's `role_max_tokens` over the server's)."""
    stop: list[str]
    stream: bool
    include_usage: bool


@dataclass
class Decision:
    """The outcome of the reasoner (and executor): calls for the client, an answer to write, or a cut-off."""

    kind: Literal["tool_calls", "answer", "length"]
    thought: str | None
    calls: list[ToolCall]
    trajectory: Trajectory
    usage: Usage
    first_token_s: float | None = None
    answer_budget: int = 0
    """Tokens the summarizer may write (`answer`): its cap, or what is left of the request's budget if less."""


@dataclass
class Answer:
    """The summarizer's text and why it ended (`stop` or `length`)."""

    content: str
    finish_reason: Literal["stop", "length"]


def _unsupported(request: ChatRequest) -> None:
    problems: list[tuple[str, str]] = []
    if request.n not in (None, 1):
        problems.append(("n", f"n: got {request.n}, only 1 choice is generated; omit n"))
    if request.logprobs:
        problems.append(("logprobs", "logprobs: not supported by the agent; omit it"))
    if request.top_logprobs:
        problems.append(("top_logprobs", "top_logprobs: not supported by the agent; omit it"))
    if request.logit_bias:
        problems.append(("logit_bias", "logit_bias: not supported by the agent; omit it"))
    for name in ("frequency_penalty", "presence_penalty"):
        value = getattr(request, name)
        if value not in (None, 0, 0.0):
            problems.append((name, f"{name}: got {value}, only 0 is supported; omit it"))
    if request.response_format is not None and request.response_format.type != "text":
        problems.append(
            (
                "response_format",
                f"response_format.type: got {request.response_format.type!r}, the "
                "summarizer writes plain text; use {'type': 'text'} or omit it",
            )
        )
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > 4:
        problems.append(("stop", f"stop: got {len(stops)} sequences, at most 4 are allowed"))
    if problems:
        raise APIError(400, "; ".join(text for _, text in problems), param=problems[0][0], code="unsupported_parameter")


class AgentRuntime:
    """A loaded agent (model, tokenizer, roles) with its decoding engine, serving role-gated turns."""

    def __init__(
        self,
        *,
        tokenizer: Any,
        roles: Sequence[str],
        engine: BatchEngine,
        args: ServeArgs,
        model_name: str,
        logits_size: int,
        max_positions: int | None,
        reasoner: str = "reasoner",
        executor: str = "executor",
        summarizer: str = "summarizer",
    ) -> None:
        self.tokenizer = tokenizer
        self.engine = engine
        self.args = args
        self.model_name = model_name
        self.renderer = Renderer(tokenizer, list(roles))
        self.roles = list(roles)
        self.reasoner, self.executor, self.summarizer = reasoner, executor, summarizer
        self.gate = RoleGate(
            GatePolicy(
                reasoner=reasoner,
                executor=executor,
                summarizer=summarizer,
                max_steps=args.max_steps,
                max_calls=args.max_calls,
            ),
            self.roles,
        )
        self.vocab = Vocabulary(tokenizer, logits_size=logits_size, end_text=END)
        self.max_context = args.max_context_tokens or max_positions
        self._accepted_models = {model_name}

    def accept_model_names(self, *names: str) -> None:
        """Also accept these `model` values in requests (e.g. the model URI)."""
        self._accepted_models.update(name for name in names if name)

    # --- checking a request -----------------------------------------------------------------------------------------

    def prepare(self, request: ChatRequest) -> TurnPlan:
        """Check the request and build the trajectory; raises `APIError` (4xx) for anything the agent cannot do."""
        if request.model not in self._accepted_models:
            raise APIError(
                404,
                f"model: got {request.model!r}, this server serves {self.model_name!r}; set "
                f"model={self.model_name!r} (see GET /v1/models)",
                param="model",
                code="model_not_found",
            )
        _unsupported(request)
        tools = plan_tools(
            request, has_executor=self.executor in self.roles, has_summarizer=self.summarizer in self.roles
        )
        try:
            trajectory = messages_to_trajectory(
                request.message_dicts(),
                tools.tools,
                reasoner=self.reasoner,
                executor=self.executor,
                summarizer=self.summarizer,
            )
        except ValueError as error:
            raise APIError(400, str(error), param="messages", code="invalid_request") from None
        self._restore_thoughts(request, trajectory)
        requested = request.max_completion_tokens or request.max_tokens
        budget = requested or self.args.max_completion_tokens
        if budget > self.args.max_completion_tokens:
            name = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            raise APIError(
                400,
                f"{name}: got {budget}, this server allows at most {self.args.max_completion_tokens}",
                param=name,
                code="invalid_request",
            )
        temperature = request.temperature or 0.0
        stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        return TurnPlan(
            request=request,
            trajectory=trajectory,
            tools=tools,
            sampling=Sampling(temperature=temperature, top_p=request.top_p or 1.0, seed=request.seed),
            budget=budget,
            role_caps=self._role_caps(request, answer_sized=requested is not None),
            stop=stop,
            stream=bool(request.stream),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )

    def _role_caps(self, request: ChatRequest, *, answer_sized: bool) -> dict[str, int]:
        """Per-turn caps: the request's `role_max_tokens`, else the server's; a request that sets max_tokens lets
        the summarizer's answer take whatever its budget leaves (the answer is what a client sizes)."""
        asked = dict(request.role_max_tokens or {})
        unknown = sorted(set(asked) - set(self.roles))
        if unknown:
            raise APIError(
                400,
                f"role_max_tokens: got {', '.join(map(repr, unknown))}, this agent's roles are {self.roles}",
                param="role_max_tokens",
                code="invalid_request",
            )
        limit = self.args.max_completion_tokens
        over = {role: value for role, value in asked.items() if value > limit}
        if over:
            raise APIError(
                400,
                f"role_max_tokens: got {over}, this server allows at most {limit} per turn",
                param="role_max_tokens",
                code="invalid_request",
            )
        caps = {role: self.args.role_budget(role) for role in self.roles}
        if answer_sized:
            caps[self.summarizer] = limit
        caps.update(asked)
        return caps

    def _restore_thoughts(self, request: ChatRequest, trajectory: Trajectory) -> None:
        """Put each assistant message's `reasoning_content` back as the thought of its reasoner turn."""
        assistants = [m for m in request.messages if isinstance(m, AssistantMessage)]
        reasoner_turns = [turn for turn in trajectory.turns if turn.role == self.reasoner]
        for message, turn in zip(assistants, reasoner_turns, strict=False):
            if message.reasoning_content:
                turn.thought = message.reasoning_content.strip() or turn.thought

    # --- generation -------------------------------------------------------------------------------------------------

    def _job(
        self, trajectory: Trajectory, role: str, budget: int, constraint: TokenConstraint | None, sampling: Sampling
    ) -> GenerationJob:
        prompt = self.renderer.prompt(trajectory, role)
        if self.max_context is not None and len(prompt) + budget > self.max_context:
            raise APIError(
                400,
                f"messages: the conversation takes {len(prompt)} tokens as the {role}'s prompt; "
                f"with its budget of {budget} new tokens that exceeds the context of "
                f"{self.max_context} tokens; shorten the conversation or lower max_tokens",
                param="messages",
                code="context_length_exceeded",
            )
        return GenerationJob(
            input_ids=prompt.input_ids,
            role_ids=prompt.role_ids,
            role=self.renderer.role_index[role],
            max_new_tokens=budget,
            stop_ids=self.renderer.end_ids,
            constraint=constraint,
            sampling=sampling,
        )

    async def _run(self, job: GenerationJob) -> GenerationResult:
        result = await self.engine.generate(job)
        if result.finish_reason == "error":
            raise APIError(500, f"generation failed: {result.error}", code="generation_failed")
        return result

    def _text(self, result: GenerationResult) -> str:
        ids = result.token_ids
        end = self.renderer.end_ids
        if ids[-len(end) :] == end:
            ids = ids[: -len(end)]
        return clean_output(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _next_roles(self, plan: TurnPlan) -> list[str]:
        if plan.tools.executor_required:
            return [self.executor]
        allowed = [role for role in self.roles if role not in (self.reasoner, self.executor, self.summarizer)]
        if plan.tools.executor_allowed:
            allowed.insert(0, self.executor)
        if plan.tools.summarizer_allowed:
            allowed.append(self.summarizer)
        return allowed

    async def decide(self, plan: TurnPlan) -> Decision:
        """Run the role gate (`mor.agent.gate`) from the conversation's end: the reasoner, and the roles it hands
        over to, up to the executor's calls or the summarizer (whose answer `answer` / `stream_answer` writes)."""
        trajectory = plan.trajectory
        start = len(trajectory.turns)
        usage = Usage()
        first_token_s: float | None = None
        grammar = None
        if plan.tools.executor_allowed:
            try:
                functions = [(tool.name, tool.parameters) for tool in plan.tools.callable]
                grammar = CallsConstraint.compile(self.vocab, functions, parallel=plan.tools.parallel)
            except ValueError as error:
                raise APIError(
                    400,
                    f"tools: {error}; the constrained decoder cannot compile this schema (a keyword "
                    "it does not support, or no value can satisfy it); simplify or fix it",
                    param="tools",
                    code="unsupported_schema",
                ) from None
        allowed = self._next_roles(plan)
        action = self.gate.begin(trajectory, allowed)
        cut = False
        while isinstance(action, Generate):
            role = action.role
            left = plan.budget - usage.completion_tokens
            if left <= 0:  # the request's budget is spent before this role's turn
                return Decision(
                    "length", last_thought(trajectory, self.reasoner, since=start), [], trajectory, usage, first_token_s
                )
            turn_budget = min(plan.role_caps[role], left)
            if role == self.summarizer:
                thought = last_thought(trajectory, self.reasoner, since=start)
                return Decision("answer", thought, [], trajectory, usage, first_token_s, answer_budget=turn_budget)
            constraint: TokenConstraint
            if role == self.reasoner:
                constraint = ReasonerConstraint(self.vocab, self.gate.next_roles(allowed))
            elif role == self.executor:
                assert grammar is not None
                constraint = CallsConstraint(self.vocab, grammar)
            else:
                constraint = TextConstraint(self.vocab)
            result = await self._run(self._job(trajectory, role, turn_budget, constraint, plan.sampling))
            usage.add(role, result, reasoning=role != self.executor)
            if first_token_s is None:
                first_token_s = result.first_token_s
            cut = result.finish_reason == "length"  # at the role's cap, or at what was left of the budget
            spent = cut and turn_budget < plan.role_caps[role]  # the request's budget ran out in this turn
            if spent or (isinstance(constraint, CallsConstraint) and not constraint.accepted):
                return Decision(
                    "length", last_thought(trajectory, self.reasoner, since=start), [], trajectory, usage, first_token_s
                )
            action = self.gate.after(trajectory, role, self._text(result), allowed, tools=plan.tools.callable)
        if isinstance(action, RunCalls):
            problem = check_calls(action.calls, plan.tools.callable)
            if problem is not None:
                raise APIError(
                    500, f"the executor's output failed its grammar check: {problem}", code="generation_failed"
                )
            return Decision("tool_calls", action.thought, action.calls, trajectory, usage, first_token_s)
        if action.failure is not None and not action.limit and not cut:  # a turn cut short ends in "length"
            raise APIError(
                500,
                f"the {action.failure.role}'s output could not be used: {action.failure.reason}",
                code="generation_failed",
            )
        return Decision("length", None, [], trajectory, usage, first_token_s)

    async def stream_answer(self, plan: TurnPlan, decision: Decision) -> AsyncIterator[str | Answer]:
        """The summarizer's answer as text deltas, then the `Answer` (its usage is added to `decision.usage`)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        def on_token(token: int) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, token)

        job = self._job(
            decision.trajectory, self.summarizer, decision.answer_budget, TextConstraint(self.vocab), plan.sampling
        )
        job.on_token = on_token
        assembler = TextAssembler(self.tokenizer, end_text=END, stop=plan.stop)
        future = self.engine.submit(job)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
        try:
            while True:
                token = await queue.get()
                if token is None:
                    break
                delta = assembler.push(token)
                if delta:
                    yield delta
                if assembler.stopped:
                    job.cancel()
            result = await asyncio.wrap_future(future)
        except BaseException:
            job.cancel()
            raise
        if result.finish_reason == "error":
            raise APIError(500, f"generation failed: {result.error}", code="generation_failed")
        decision.usage.add(self.summarizer, result, reasoning=False)
        if decision.first_token_s is None:
            decision.first_token_s = result.first_token_s
        rest = assembler.finish()
        if rest:
            yield rest
        finish: Literal["stop", "length"] = (
            "length" if result.finish_reason == "length" and not assembler.stopped else "stop"
        )
        yield Answer(content=assembler.text, finish_reason=finish)

    async def answer(self, plan: TurnPlan, decision: Decision) -> Answer:
        """The summarizer's whole answer."""
        answer: Answer | None = None
        async for item in self.stream_answer(plan, decision):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer
