"""Role completion: fill the parts a data format did not record, so every role has something to learn.

Readers (`mor.data.readers`) leave a deciding turn's `thought` as None when the format has no thoughts, and list
`"answer"` in `metadata.missing` when a trajectory stops after the tool results. `complete(trajectories, completer)`
fills them:

* `answer` (first): when `metadata.missing` lists `"answer"` and the trajectory ends on observations (optionally
  followed by the reasoner's hand-over to the summarizer), a hand-over (`thought=None`) is appended if absent, then a
  `summarizer` turn with the completed answer.
* `thought`: every turn with a `next_role` and `thought=None` followed by the turn it hands over to gets a thought
  explaining that next turn (the executor's calls, or the summarizer's answer, including one completed above).

Each filled field is marked in `metadata.completed` (`{"turn 4 thought": "rule", "turn 9 answer": "llm:<model>"}`,
turn indices counted from 0 over the completed trajectory, as `mor.data.verify` counts them) and its part leaves
`metadata.missing` once nothing of it is left. A record whose completion fails is returned unchanged with the reason
(`CompletionResult.error`); the others go on.

Completers:

* `RuleCompleter`: deterministic text from the calls and observations ("I will call get_weather with city=Paris to
  answer the request.", "get_weather returned: {...}"); no endpoint.
* `LLMCompleter`: an OpenAI-compatible chat endpoint (temperature 0) prompted with `prompts/thought.txt` or
  `prompts/answer.txt`, with retries (exponential backoff on 429, 5xx, timeouts and connection errors, honouring
  `Retry-After`), a thread-safe token-bucket rate limit and a content-addressed response cache on disk.

Both are picklable and built from a small frozen config (`build_completer(RuleCompleterConfig())`,
`build_completer(LLMCompleterConfig(...))`), so a Ray Data `map_batches` worker can construct its own.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Literal, Protocol

from mor.data.render import tools_text
from mor.data.schema import Trajectory, TrajectoryMeta, Turn

__all__ = [
    "PARTS",
    "PROMPT_VERSION",
    "CompletionError",
    "CompletionRequest",
    "CompletionResult",
    "Completer",
    "LLMCompleter",
    "LLMCompleterConfig",
    "RuleCompleter",
    "RuleCompleterConfig",
    "build_completer",
    "complete",
    "complete_one",
    "load_prompt",
]

Part = Literal["thought", "answer"]

PARTS: tuple[str, ...] = ("thought", "answer")
"""The parts a completer fills."""

PROMPT_VERSION = "1"
"""Version of the packaged prompt templates and of how a prompt is rendered; part of every cache key. Bump it when a
change should invalidate cached responses without changing the rendered prompt text (e.g. parsing of replies)."""

_SUMMARIZER = "summarizer"
_REASONER = "reasoner"
_PROMPT_CHARS = 1500  # longest observation, answer or system text quoted in an LLM prompt


class CompletionError(Exception):
    """A part could not be completed (the endpoint failed after its retries, an empty reply, ...)."""


@dataclass(frozen=True)
class CompletionRequest:
    """One part to fill: `trajectory` as completed so far and the index of the turn the text is for (the deciding
    turn for a thought, the summarizer turn for an answer, which the trajectory already holds with empty content)."""

    part: Part
    trajectory: Trajectory
    turn_index: int

    @property
    def context(self) -> list[Turn]:
        """The turns before the one being filled."""
        return self.trajectory.turns[: self.turn_index]

    @property
    def next_turn(self) -> Turn | None:
        """For a thought: the turn it hands over to (the action the thought explains)."""
        following = self.turn_index + 1
        return self.trajectory.turns[following] if following < len(self.trajectory.turns) else None

    @property
    def observations(self) -> list[Turn]:
        """For an answer: the observations the trajectory ends on (before the final hand-over, if any)."""
        return _trailing_observations(self.context)

    def call_name(self, call_id: str | None) -> str:
        """The name of the function whose call has id `call_id` ("a tool" when unknown)."""
        for call in self.trajectory.calls:
            if call_id is not None and call.id == call_id:
                return call.name
        return "a tool"


class Completer(Protocol):
    """Fills one part; `mark` is what `metadata.completed` records (`rule`, `llm:<model>`)."""

    @property
    def mark(self) -> str: ...

    def fill(self, request: CompletionRequest) -> str:
        """The text of the part; raises `CompletionError` with the reason when it cannot."""
        ...


@dataclass
class CompletionResult:
    """The outcome for one trajectory: completed (`error` None), or failed (`trajectory` unchanged, `error` the
    reason). `completed` maps each filled field (`turn 4 thought`) to its completer's mark."""

    trajectory: Trajectory
    error: str | None = None
    completed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the trajectory was completed (or needed nothing)."""
        return self.error is None

    @property
    def id(self) -> str:
        """The trajectory's id."""
        return self.trajectory.id


# --------------------------------------------------------------------------------------------------------------------
# Completing a trajectory


def complete(
    trajectories: Iterable[Trajectory], completer: Completer, *, parts: Sequence[str] = PARTS
) -> Iterator[CompletionResult]:
    """One `CompletionResult` per trajectory, in order: the trajectory with its missing `parts` filled by
    `completer`, or the reason it failed (a failure never stops the others)."""
    wanted = _check_parts(parts)
    for trajectory in trajectories:
        yield _complete(trajectory, completer, wanted)


def complete_one(trajectory: Trajectory, completer: Completer, *, parts: Sequence[str] = PARTS) -> CompletionResult:
    """`complete` for a single trajectory (e.g. one row of a Ray Data batch)."""
    return _complete(trajectory, completer, _check_parts(parts))


def _check_parts(parts: Sequence[str]) -> frozenset[str]:
    if isinstance(parts, str):
        parts = (parts,)
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise ValueError(f"parts: got {list(parts)}, must be a non-empty subset of {list(PARTS)}; e.g. ('thought',)")
    return frozenset(parts)


def _missing(metadata: TrajectoryMeta) -> list[str]:
    return list(getattr(metadata, "missing", None) or [])


def _complete(trajectory: Trajectory, completer: Completer, parts: frozenset[str]) -> CompletionResult:
    turns = list(trajectory.turns)  # turns are replaced, never changed in place
    missing = _missing(trajectory.metadata)
    completed: dict[str, str] = {}
    mark = completer.mark
    try:
        if "answer" in parts and "answer" in missing and _answerable(turns):
            if turns[-1].role == "observation":
                turns.append(Turn(role=_REASONER, next_role=_SUMMARIZER))
                if "thought" not in missing:
                    missing.append("thought")
            index = len(turns)
            turns.append(Turn(role=_SUMMARIZER, content=""))
            request = CompletionRequest("answer", _with_turns(trajectory, turns), index)
            turns[index] = Turn(role=_SUMMARIZER, content=_fill(completer, request))
            completed[f"turn {index} answer"] = mark
            missing.remove("answer")
        if "thought" in parts:
            for index, turn in enumerate(turns):
                if turn.next_role is None or turn.thought is not None or index + 1 >= len(turns):
                    continue
                request = CompletionRequest("thought", _with_turns(trajectory, turns), index)
                turns[index] = turn.model_copy(update={"thought": _fill(completer, request)})
                completed[f"turn {index} thought"] = mark
            left = any(turn.next_role is not None and turn.thought is None for turn in turns)
            if "thought" in missing and not left and any(key.endswith(" thought") for key in completed):
                missing.remove("thought")
    except CompletionError as error:
        return CompletionResult(trajectory, error=str(error))
    if not completed:
        return CompletionResult(trajectory)
    extra = trajectory.metadata.model_dump()
    extra["missing"] = missing
    extra["completed"] = {**dict(extra.get("completed") or {}), **completed}
    done = Trajectory(
        id=trajectory.id, tools=trajectory.tools, turns=turns, metadata=TrajectoryMeta.model_validate(extra)
    )
    return CompletionResult(done, completed=completed)


def _fill(completer: Completer, request: CompletionRequest) -> str:
    where = f"turn {request.turn_index} {request.part}"
    try:
        text = completer.fill(request)
    except CompletionError as error:
        raise CompletionError(f"{where}: {error}") from error
    if not text.strip():
        raise CompletionError(f"{where}: the completer returned empty text")
    return text.strip()


def _with_turns(trajectory: Trajectory, turns: list[Turn]) -> Trajectory:
    return trajectory.model_copy(update={"turns": list(turns)})


def _answerable(turns: list[Turn]) -> bool:
    """Whether the trajectory ends on observations, optionally followed by a hand-over to the summarizer."""
    end = turns
    if end and end[-1].next_role == _SUMMARIZER:
        end = end[:-1]
    return bool(end) and end[-1].role == "observation"


def _trailing_observations(turns: Sequence[Turn]) -> list[Turn]:
    end = list(turns)
    if end and end[-1].next_role is not None:
        end = end[:-1]
    out: list[Turn] = []
    for turn in reversed(end):
        if turn.role != "observation":
            break
        out.append(turn)
    return out[::-1]


def _shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to at most `limit` characters at a word boundary when there is one nearby."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: max(limit - 1, 1)]
    space = cut.rfind(" ")
    if space > limit * 0.7:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


# --------------------------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class RuleCompleterConfig:
    """Settings of the deterministic completer."""

    max_value_chars: int = 60
    """Longest argument value quoted in a thought."""
    max_arguments: int = 4
    """Arguments listed per call in a thought; more are summarised as `...`."""
    max_observation_chars: int = 400
    """Longest observation quoted in an answer (per observation)."""


class RuleCompleter:
    """Deterministic thoughts and answers from the calls and observations; no endpoint."""

    mark = "rule"

    def __init__(self, config: RuleCompleterConfig | None = None) -> None:
        self.config = config or RuleCompleterConfig()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RuleCompleter, (self.config,))

    def fill(self, request: CompletionRequest) -> str:
        """A thought naming the next calls (or why it answers now), or an answer quoting the last observations."""
        if request.part == "answer":
            return self._answer(request)
        return self._thought(request)

    def _call_text(self, name: str, arguments: Mapping[str, Any]) -> str:
        if not arguments:
            return f"{name} (no arguments)"
        shown = []
        for key, value in list(arguments.items())[: self.config.max_arguments]:
            text = value if isinstance(value, str) else _json(value)
            shown.append(f"{key}={_shorten(text, self.config.max_value_chars)}")
        if len(arguments) > self.config.max_arguments:
            shown.append("...")
        return f"{name} with {', '.join(shown)}"

    def _thought(self, request: CompletionRequest) -> str:
        turn = request.trajectory.turns[request.turn_index]
        following = request.next_turn
        since_user = _since_last_user(request.context)
        if following is not None and following.calls:
            calls = [self._call_text(call.name, call.arguments) for call in following.calls]
            listed = calls[0] if len(calls) == 1 else ", ".join(calls[:-1]) + " and " + calls[-1]
            if any(t.role == "observation" for t in since_user):
                return f"Next I will call {listed}."
            return f"I will call {listed} to answer the request."
        if turn.next_role == _SUMMARIZER:
            names = _unique(request.call_name(t.call_id) for t in since_user if t.role == "observation")
            if names:
                return f"I have the results of {_and(names)}, so I will answer the user now."
            if request.trajectory.tools:
                return "No tool call is needed for this message, so I will answer directly."
            return "I will answer the user directly."
        return f"I will hand over to the {turn.next_role}."

    def _answer(self, request: CompletionRequest) -> str:
        observations = request.observations
        if not observations:
            raise CompletionError("no observation to answer from")
        lines = [
            f"{request.call_name(t.call_id)} returned: {_shorten(t.content or '', self.config.max_observation_chars)}"
            for t in observations
        ]
        return "\n".join(lines)


def _since_last_user(turns: Sequence[Turn]) -> list[Turn]:
    for index in range(len(turns) - 1, -1, -1):
        if turns[index].role == "user":
            return list(turns[index + 1 :])
    return list(turns)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------------------------------------------------
# Prompts


def load_prompt(part: str, prompts_dir: str | Path | None = None) -> Template:
    """The prompt template of `part` (`thought` or `answer`): `<prompts_dir>/<part>.txt`, or the packaged one
    (`mor/data/prompts/<part>.txt`). Placeholders: `$tools`, `$conversation`, and `$next_action` (thought) or
    `$observations` (answer)."""
    if part not in PARTS:
        raise ValueError(f"part: got {part!r}, must be one of {list(PARTS)}")
    if prompts_dir is not None:
        path = Path(prompts_dir) / f"{part}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"prompts_dir: {path} not found; it needs thought.txt and answer.txt")
        where, text = str(path), path.read_text(encoding="utf-8")
    else:
        where = f"mor/data/prompts/{part}.txt"
        text = resources.files("mor.data").joinpath("prompts", f"{part}.txt").read_text(encoding="utf-8")
    template = Template(text)
    expected = _PLACEHOLDERS[part]
    found = set(template.get_identifiers()) if template.is_valid() else None
    if found is None or found != expected:
        raise ValueError(
            f"{where}: placeholders {sorted(found) if found is not None else 'invalid'}, must be exactly "
            f"{sorted('$' + name for name in expected)} (write a literal dollar as $$)"
        )
    return template


_PLACEHOLDERS: dict[str, set[str]] = {
    "thought": {"tools", "conversation", "next_action"},
    "answer": {"tools", "conversation", "observations"},
}


def _conversation_text(request: CompletionRequest, turns: Sequence[Turn]) -> str:
    lines = []
    for turn in turns:
        if turn.role == "system":
            lines.append(f"System: {_shorten(turn.content or '', _PROMPT_CHARS)}")
        elif turn.role == "user":
            lines.append(f"User: {turn.content or ''}")
        elif turn.role == "observation":
            name = request.call_name(turn.call_id)
            lines.append(f"Result of {name}: {_shorten(turn.content or '', _PROMPT_CHARS)}")
        elif turn.calls:
            lines += [f"Assistant called: {call.name}({_json(call.arguments)})" for call in turn.calls]
        elif turn.next_role is not None:
            if turn.thought:
                lines.append(f"Assistant thought: {turn.thought}")
        else:
            lines.append(f"Assistant: {_shorten(turn.content or '', _PROMPT_CHARS)}")
    return "\n".join(lines) if lines else "(empty)"


def _next_action_text(request: CompletionRequest) -> str:
    following = request.next_turn
    role = request.trajectory.turns[request.turn_index].next_role
    if following is not None and following.calls:
        return "\n".join(f"It called {call.name}({_json(call.arguments)})" for call in following.calls)
    if following is not None and following.content is not None:
        return f"It replied to the user: {_shorten(following.content, _PROMPT_CHARS)}"
    return f"It handed over to the {role}."


def _render_prompt(template: Template, request: CompletionRequest) -> str:
    tools = tools_text(request.trajectory.tools) or "(none)"
    if request.part == "thought":
        return template.substitute(
            tools=tools,
            conversation=_conversation_text(request, request.context),
            next_action=_next_action_text(request),
        )
    observations = request.observations
    if not observations:
        raise CompletionError("no observation to answer from")
    shown = [
        f"{request.call_name(t.call_id)} returned: {_shorten(t.content or '', _PROMPT_CHARS)}" for t in observations
    ]
    return template.substitute(
        tools=tools,
        conversation=_conversation_text(request, _before_observations(request.context)),
        observations="\n".join(shown),
    )


def _before_observations(turns: Sequence[Turn]) -> list[Turn]:
    end = list(turns)
    if end and end[-1].next_role is not None:
        end = end[:-1]
    while end and end[-1].role == "observation":
        end.pop()
    return end


# --------------------------------------------------------------------------------------------------------------------
# LLM endpoint


@dataclass(frozen=True)
class LLMCompleterConfig:
    """Where and how to ask an OpenAI-compatible endpoint (small and picklable: workers build their completer)."""

    base_url: str
    """The API root, e.g. `http://127.0.0.1:8000/v1` or `https://api.openai.com/v1`."""
    model: str
    """Model name sent with each request; also part of the cache key and of the `llm:<model>` mark."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (read when the completer is built); None: no key."""
    cache_dir: str | None = None
    """Directory of the response cache (one JSON file per key); None: no cache."""
    prompt_version: str = PROMPT_VERSION
    """Template version in the cache key; change it to re-ask everything."""
    prompts_dir: str | None = None
    """Directory holding `thought.txt` and `answer.txt` to use instead of the packaged prompts."""
    max_tokens: int = 512
    """Longest reply, in tokens."""
    timeout_s: float = 60.0
    """Timeout of one request."""
    max_attempts: int = 5
    """Requests per part before giving up (1: no retry) on 429 (and 408, 409), 5xx, timeouts and connection errors;
    other statuses (400, 401, 404, 422, ...) fail at once."""
    backoff_s: float = 1.0
    """Wait before the second attempt; doubled for each further one (with jitter), unless `Retry-After` says."""
    max_backoff_s: float = 60.0
    """Longest wait between attempts, `Retry-After` included."""
    requests_per_second: float | None = None
    """Client-side rate limit of this completer (per process: divide by the number of workers); None: none."""
    burst: int = 1
    """Requests the rate limit lets through at once after a pause."""

    def __post_init__(self) -> None:
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url: got {self.base_url!r}, must be an http(s) URL; e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            problems.append("model: empty; give the model name the endpoint serves")
        if self.max_attempts < 1:
            problems.append(f"max_attempts: got {self.max_attempts}, must be ≥ 1; e.g. 5")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            problems.append(f"backoff_s, max_backoff_s: got {self.backoff_s}, {self.max_backoff_s}; must be ≥ 0")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            problems.append(f"requests_per_second: got {self.requests_per_second}, must be > 0 or None; e.g. 5")
        if self.burst < 1:
            problems.append(f"burst: got {self.burst}, must be ≥ 1")
        if self.max_tokens < 1 or self.timeout_s <= 0:
            problems.append(f"max_tokens, timeout_s: got {self.max_tokens}, {self.timeout_s}; must be > 0")
        if problems:
            raise ValueError("LLMCompleterConfig: " + "; ".join(problems))


class _TokenBucket:
    """A thread-safe token bucket: `rate` tokens a second, at most `burst` saved up. `acquire` reserves a token and
    sleeps until it is due, so concurrent callers are spaced by 1/rate however many threads wait."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0  # may go negative: a reservation the caller waits out
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class _DiskCache:
    """Responses by key, one JSON file each (`<dir>/<key[:2]>/<key>.json`), written atomically (temp file + rename),
    so concurrent workers and interrupted runs never leave a half-written entry."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("response"), str):
            return None
        return str(entry["response"])

    def put(self, key: str, response: str, **about: Any) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp", delete=False
        )
        try:
            with handle:
                json.dump({"key": key, **about, "response": response}, handle, ensure_ascii=False)
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise


_RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class LLMCompleter:
    """Thoughts and answers from an OpenAI-compatible chat endpoint at temperature 0 (see `LLMCompleterConfig`).

    Each part is one prompt (`load_prompt`) sent as a user message. A response is cached under the sha256 of the
    model, the prompt version, `max_tokens` and the rendered prompt, so a re-run sends nothing already answered (the
    base URL is not in the key: the same model moved to another host still hits). Counters: `requests` (HTTP
    requests sent, retries included), `cache_hits`, `retries`.
    """

    def __init__(self, config: LLMCompleterConfig) -> None:
        self.config = config
        self.mark = f"llm:{config.model}"
        self._api_key = "not-needed"  # servers without authentication ignore it; the client insists on one
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(
                    f"api_key_env: the environment variable {config.api_key_env!r} is not set; export it, or "
                    "set api_key_env=None for an endpoint without authentication"
                )
            self._api_key = key
        self._templates = {part: load_prompt(part, config.prompts_dir) for part in PARTS}
        self._cache = _DiskCache(config.cache_dir) if config.cache_dir else None
        self._bucket = _TokenBucket(config.requests_per_second, config.burst) if config.requests_per_second else None
        self._client: Any = None
        self._lock = threading.Lock()
        self.requests = 0
        self.cache_hits = 0
        self.retries = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (LLMCompleter, (self.config,))

    def close(self) -> None:
        """Close the HTTP client (a later request opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> LLMCompleter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prompt(self, request: CompletionRequest) -> str:
        """The rendered prompt of `request`."""
        return _render_prompt(self._templates[request.part], request)

    def cache_key(self, prompt: str) -> str:
        """The content address of a prompt's response."""
        identity = {
            "model": self.config.model,
            "prompt_version": self.config.prompt_version,
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
            "prompt": prompt,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def fill(self, request: CompletionRequest) -> str:
        """The endpoint's text for `request` (cached); `CompletionError` naming the endpoint and the HTTP status once
        the attempts are spent."""
        prompt = self.prompt(request)
        key = self.cache_key(prompt)
        if self._cache is not None:
            cached = self._cache.get(key)
            if cached is not None:
                with self._lock:
                    self.cache_hits += 1
                return cached
        text = _clean(request.part, self._ask(prompt))
        if not text:
            raise CompletionError(f"{self.config.base_url}: model {self.config.model!r} returned an empty reply")
        if self._cache is not None:
            self._cache.put(key, text, model=self.config.model, prompt_version=self.config.prompt_version)
        return text

    def _openai(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    base_url=self.config.base_url,
                    api_key=self._api_key,
                    timeout=self.config.timeout_s,
                    max_retries=0,  # retried here, with the rate limit and Retry-After
                )
            return self._client

    def _ask(self, prompt: str) -> str:
        import openai

        config = self.config
        client = self._openai()
        where = f"{config.base_url} (model {config.model!r})"
        for attempt in range(1, config.max_attempts + 1):
            if self._bucket is not None:
                self._bucket.acquire()
            with self._lock:
                self.requests += 1
            wait: float | None = None
            try:
                response = client.chat.completions.create(
                    model=config.model,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=0,
                    max_tokens=config.max_tokens,
                )
            except openai.APIStatusError as error:
                status = error.status_code
                detail = _shorten(_error_text(error), 200)
                if status not in _RETRY_STATUSES and status < 500:
                    raise CompletionError(f"{where}: HTTP {status} (not retried): {detail}") from error
                failure = f"HTTP {status} after {attempt} attempt(s): {detail}"
                wait = _retry_after_s(error.response.headers)
            except openai.APITimeoutError:
                failure = f"timed out ({config.timeout_s:g} s) after {attempt} attempt(s)"
            except openai.APIConnectionError as error:
                failure = f"unreachable after {attempt} attempt(s) ({error.__cause__ or error})"
            else:
                choices = getattr(response, "choices", None) or []
                content = choices[0].message.content if choices else None
                return content or ""
            if attempt == config.max_attempts:
                raise CompletionError(f"{where}: {failure}")
            if wait is None:
                wait = config.backoff_s * 2 ** (attempt - 1) * random.uniform(0.75, 1.0)
            with self._lock:
                self.retries += 1
            time.sleep(min(wait, config.max_backoff_s))
        raise CompletionError(f"{where}: no attempt made (max_attempts {config.max_attempts})")  # pragma: no cover


def _error_text(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else inner
        if message:
            return str(message)
    return str(getattr(error, "message", "") or error)


def _clean(part: str, text: str) -> str:
    text = text.strip()
    prefix = f"{part}:"
    if text.lower().startswith(prefix):
        text = text[len(prefix) :].strip()
    return text


# --------------------------------------------------------------------------------------------------------------------


def build_completer(config: RuleCompleterConfig | LLMCompleterConfig) -> RuleCompleter | LLMCompleter:
    """The completer a config describes."""
    if isinstance(config, LLMCompleterConfig):
        return LLMCompleter(config)
    if isinstance(config, RuleCompleterConfig):
        return RuleCompleter(config)
    raise TypeError(f"config: got {type(config).__name__}, expected RuleCompleterConfig or LLMCompleterConfig")
