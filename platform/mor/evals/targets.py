"""Concrete models under test: the in-process role-gated MoR agent, and any OpenAI-compatible endpoint.

- `AgentTarget(agent)`: one `Agent.step` per turn; a role's unusable output becomes the reply's `failure`
  with the `failing_role` that produced it (`AgentTarget.from_model_uri` loads a registered agent).
- `OpenAITarget(base_url, api_key, model)`: the official `openai` client against our served agent or any
  third-party server (a baseline for comparison). Our served agent is recognised by the `mor` field of its
  replies; its failures are then attributed to roles too.

Both return `TargetReply` (see `mor.evals.target`); neither raises for bad model output, only for a target that
cannot be reached or refuses the request for a reason no model output explains (auth, unknown model).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mor.evals.target import ChatTarget, TargetCall, TargetReply

if TYPE_CHECKING:
    from mor.agent import Agent, AgentAction, AgentConfig
    from mor.model import MoRConfig
    from mor.registry import LocalAgentDir
    from mor.settings import Settings

__all__ = [
    "TOOL_CHOICES",
    "AgentTarget",
    "GateRoles",
    "OpenAITarget",
    "TargetError",
    "gate_roles_of",
    "write_untrained_agent",
]

TOOL_CHOICES: tuple[str, ...] = ("auto", "required", "none")
# HTTP statuses that say something about this request's content (a model-side failure of one item); any other
# error status (auth, unknown model, rate limit after retries, gateway down) is the target's, and raises.
_ITEM_STATUSES = frozenset({400, 413, 422, 500})
_FAILED_ROLE = re.compile(r"\bthe (\w+)'s output\b")


class TargetError(RuntimeError):
    """The target cannot answer at all (unreachable, unauthorised, unknown model); the message says what to fix."""


@dataclass(frozen=True)
class GateRoles:
    """The role names of a role-gated target's gate (a MoR agent may rename the paper's three roles)."""

    reasoner: str = "reasoner"
    executor: str = "executor"
    summarizer: str = "summarizer"


def gate_roles_of(target: ChatTarget) -> GateRoles | None:
    """The gate roles of a role-gated target (failures can be attributed to roles), None for any other model."""
    roles = getattr(target, "gate_roles", None)
    return roles if isinstance(roles, GateRoles) else None


def _check_tool_choice(tool_choice: str) -> None:
    if tool_choice not in TOOL_CHOICES:
        raise ValueError(
            f"tool_choice: got {tool_choice!r}, must be one of {', '.join(TOOL_CHOICES)}; "
            "e.g. 'auto' to let the model decide"
        )


# ---------------------------------------------------------------- in-process agent


class AgentTarget:
    """The role-gated MoR agent, in this process: each `respond` is one `Agent.step` over the conversation.

    `tool_choice` "auto" and "required" behave alike (the reasoner decides); with "none" no tools are offered,
    and a reasoner that still hands over to the executor is recorded as its failure.
    """

    def __init__(self, agent: Agent, *, name: str = "mor-agent", agent_dir: LocalAgentDir | None = None) -> None:
        self.agent = agent
        self.name = name
        self.agent_dir = agent_dir  # the files it was loaded from, when known (its spec names its training data)
        config = agent.config
        self.gate_roles = GateRoles(config.reasoner, config.executor, config.summarizer)

    @classmethod
    def from_agent_dir(
        cls, agent_dir: LocalAgentDir, *, config: AgentConfig | None = None, name: str | None = None
    ) -> AgentTarget:
        """Load an agent directory (base + role adapters + tokenizer) into a target (`mor.agent.load_agent`)."""
        from mor.agent import load_agent

        agent = load_agent(agent_dir, config)
        label = name or (f"{agent_dir.model_name}/{agent_dir.version}" if agent_dir.model_name else agent_dir.root.name)
        return cls(agent, name=label, agent_dir=agent_dir)

    @classmethod
    def from_model_uri(
        cls, uri: str, settings: Settings, *, config: AgentConfig | None = None, name: str | None = None
    ) -> AgentTarget:
        """Resolve `models:/name@alias`, `models:/name/version`, `runs:/...` or an agent directory, and load it."""
        from mor.registry import resolve_model

        return cls.from_agent_dir(resolve_model(uri, settings), config=config, name=name or uri)

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str = "auto",
    ) -> TargetReply:
        """One step of the agent: tool calls (with the reasoner's thought), an answer, or a role's failure."""
        _check_tool_choice(tool_choice)
        offered = [] if tool_choice == "none" else list(tools)
        started = time.perf_counter()
        action = self.agent.step(messages, offered)
        latency = time.perf_counter() - started
        return self._reply(action, latency, refuse_calls=tool_choice == "none")

    def _reply(self, action: AgentAction, latency: float, *, refuse_calls: bool) -> TargetReply:
        calls = [TargetCall(call.name, dict(call.arguments), None, call.id) for call in action.calls]
        failure = action.failure
        if refuse_calls and calls:
            return TargetReply(
                thought=action.thought,
                failing_role=self.gate_roles.reasoner,
                latency_s=latency,
                failure="the reasoner handed over to the executor although tool_choice='none'",
                raw=json.dumps([{c.name: c.arguments} for c in calls], ensure_ascii=False, default=str),
            )
        if failure is not None:
            return TargetReply(
                thought=action.thought,
                failing_role=failure.role,
                failure=failure.reason,
                raw=failure.output or None,
                latency_s=latency,
            )
        raw = (
            json.dumps([{c.name: c.arguments} for c in calls], ensure_ascii=False, default=str)
            if calls
            else action.content
        )
        return TargetReply(calls=calls, content=action.content, thought=action.thought, raw=raw, latency_s=latency)


# ---------------------------------------------------------------- OpenAI-compatible endpoint


class OpenAITarget:
    """A model behind an OpenAI-compatible `/v1/chat/completions` (our served agent, vLLM, a hosted API).

    `model=None` asks the server for its first model (`GET /v1/models`) on the first turn. `role_gated=None`
    detects our served agent from its replies; pass True/False to decide it up front.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        name: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        role_gated: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        from openai import OpenAI

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url: got {base_url!r}, must be an http(s) URL of an OpenAI-compatible API; "
                "e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = base_url.rstrip("/")
        # Servers without authentication ignore the key, but the client insists on having one.
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=max_retries
        )
        self._model = model
        self.name = name or (f"{model}@{self.base_url}" if model else self.base_url)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self._role_gated = role_gated

    @property
    def model(self) -> str:
        """The model name sent with each request (asked from the server when not given)."""
        if self._model is None:
            self._model = self._first_model()
        return self._model

    @property
    def gate_roles(self) -> GateRoles | None:
        """The paper's role names when the endpoint is a role-gated agent (given or detected), else None."""
        return GateRoles() if self._role_gated else None

    def _first_model(self) -> str:
        import openai

        try:
            models = list(self._client.models.list())
        except openai.APIError as error:
            raise TargetError(
                f"model: not given and {self.base_url}/models failed ({type(error).__name__}: {error}); "
                "pass the model name explicitly"
            ) from error
        if not models:
            raise TargetError(f"model: not given and {self.base_url}/models lists none; pass the model name")
        return str(models[0].id)

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str = "auto",
    ) -> TargetReply:
        """One chat completion; an error the request itself caused (HTTP 400/413/422/500) is a failed reply."""
        import openai

        _check_tool_choice(tool_choice)
        request: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if tools:
            request["tools"] = [dict(tool) for tool in tools]
            request["tool_choice"] = tool_choice
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        if self.extra_body:
            request["extra_body"] = self.extra_body
        started = time.perf_counter()
        try:
            response = self._client.chat.completions.create(**request)
        except openai.APIStatusError as error:
            latency = time.perf_counter() - started
            if error.status_code not in _ITEM_STATUSES:
                raise TargetError(
                    f"{self.base_url}: HTTP {error.status_code} for model {self.model!r}: {_error_text(error)}; "
                    "check the URL, the API key and the model name"
                ) from error
            return self._error_reply(error, latency)
        except openai.APIConnectionError as error:  # includes timeouts, after the client's retries
            raise TargetError(
                f"{self.base_url}: unreachable ({type(error).__name__}: {error}); check that the server runs and "
                "the URL ends in /v1"
            ) from error
        return self._reply(response, time.perf_counter() - started)

    def _error_reply(self, error: Any, latency: float) -> TargetReply:
        text = _error_text(error)
        role: str | None = None
        # Our served agent names the role: "the <role>'s output could not be parsed: ...".
        if getattr(error, "code", None) == "generation_failed":
            self._role_gated = self._role_gated if self._role_gated is not None else True
            found = _FAILED_ROLE.search(text)
            role = found.group(1) if found else None
        return TargetReply(
            failure=f"HTTP {error.status_code}: {text}",
            failing_role=role if self.gate_roles else None,
            raw=text,
            latency_s=latency,
        )

    def _reply(self, response: Any, latency: float) -> TargetReply:
        extra = dict(response.model_extra or {})
        mor = extra.get("mor") if isinstance(extra.get("mor"), dict) else None
        if self._role_gated is None:
            self._role_gated = mor is not None
        usage = (
            response.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
            if response.usage is not None
            else {}
        )
        if not response.choices:
            return TargetReply(failure="the reply holds no choices", latency_s=latency, usage=usage)
        choice = response.choices[0]
        message = choice.message
        message_extra = dict(message.model_extra or {})
        reasoning = message_extra.get("reasoning_content")
        raw = json.dumps(message.model_dump(exclude_none=True), ensure_ascii=False, default=str)
        calls: list[TargetCall] = []
        problems: list[str] = []
        for entry in message.tool_calls or []:
            function = getattr(entry, "function", None)
            if function is None:
                problems.append(f"tool call {entry.id} of type {entry.type!r} is not a function call")
                continue
            arguments, problem = _decode_arguments(function.name, function.arguments)
            if problem:
                problems.append(problem)
            calls.append(TargetCall(function.name, arguments, function.arguments if problem else None, entry.id))
        thought = reasoning if isinstance(reasoning, str) else (message.content if calls else None)
        content = None if calls else message.content
        failure: str | None = "; ".join(problems) or None
        role: str | None = None
        roles = self.gate_roles
        if problems and roles:
            role = roles.executor
        if choice.finish_reason == "length" and not calls and failure is None:
            failure = "the reply stopped at the token limit (finish_reason=length)"
            raw = message.content  # the cut-off text, if the server returned any; the message itself is no output
            if roles:
                tokens = (mor or {}).get("role_tokens") or {}
                role = roles.executor if _spent(tokens.get(roles.executor)) else roles.reasoner
        return TargetReply(
            calls=calls,
            content=content,
            thought=thought,
            failing_role=role,
            failure=failure,
            raw=raw,
            latency_s=latency,
            usage={k: int(v) for k, v in usage.items() if v is not None},
        )


def _spent(tokens: Any) -> bool:
    if isinstance(tokens, Mapping):
        return any(isinstance(v, (int, float)) and v > 0 for v in tokens.values())
    return isinstance(tokens, (int, float)) and tokens > 0


def _decode_arguments(name: str, text: str | None) -> tuple[dict[str, Any], str | None]:
    if not text or not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return {}, f"arguments of {name} are not JSON ({error.msg}): {text[:120]!r}"
    if not isinstance(value, dict):
        return {}, f"arguments of {name} must be a JSON object, got {type(value).__name__}"
    return value, None


def _error_text(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message")
        if isinstance(message, str):
            return message
    return str(getattr(error, "message", error))


# ---------------------------------------------------------------- an agent without training


def write_untrained_agent(
    destination: Path,
    *,
    texts: Sequence[str],
    cache_dir: Path,
    base: str = "tiny-llama",
    mor_config: MoRConfig | Mapping[str, Any] | None = None,
    spec_text: str = "# an untrained agent: base model + zero-initialised MoR adapters\n",
) -> LocalAgentDir:
    """Write an agent directory without training: a built-in base (tokenizer trained on `texts`) plus fresh MoR
    adapters, whose zero-initialised LoRA B matrices leave the base model's outputs unchanged.

    It is the untrained baseline of a run, and the cheapest real agent for checking the evaluation plumbing
    (it fails most items, and the rows must still say why). Load it with `AgentTarget.from_agent_dir`.
    """
    from mor.base import build_builtin
    from mor.model import MoRConfig, apply_mor, save_mor
    from mor.registry import BaseModelRef, write_agent_dir

    config = mor_config if isinstance(mor_config, MoRConfig) else MoRConfig.model_validate(mor_config or {})
    model, tokenizer = build_builtin(base, texts=list(texts), roles=config.role_names, cache_dir=cache_dir)
    with tempfile.TemporaryDirectory(prefix="mor-untrained-") as scratch:
        base_dir = Path(scratch) / "base"
        model.save_pretrained(base_dir)  # before apply_mor, which wraps the model's layers in place
        mor_model = apply_mor(model, config)
        adapters = {
            role: save_mor(mor_model, Path(scratch) / "adapters" / role, roles=[role]) for role in config.role_names
        }
        return write_agent_dir(
            destination,
            base=BaseModelRef("builtin", base),
            adapters=adapters,
            tokenizer=tokenizer,
            spec_text=spec_text,
            base_weights=base_dir,
        )
