"""Rendering and role tagging: one token sequence per trajectory, shared by training and inference.

Layout (the markers are stable; a tokenizer built by `mor.base` has each as one special token, any other tokenizer
reads them as plain text)::

    <|bos|>? <|system|>{system prompt + tool list}<|end|><|user|>{query}<|end|>
    <|reasoner|>{thought} Next: executor<|end|><|executor|>{"name": ..., "arguments": {...}}<|end|>
    <|observation|>{result}<|end|><|reasoner|>... Next: summarizer<|end|><|summarizer|>{answer}<|end|>

Role tagging: every token gets the id of one agent role. A role turn's header, body and end marker belong to that
role; tokens the model only reads (bos, system, user, observation) belong to the role that consumes them next.
Labels: only a role's own output (its body and end marker) is learned; everything else is -100.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mor.data.schema import CONTEXT_ROLES, Tool, Trajectory, Turn

__all__ = [
    "BOS",
    "END",
    "PAD",
    "IGNORE_INDEX",
    "header",
    "marker_tokens",
    "tools_text",
    "turn_text",
    "system_text",
    "render_text",
    "TurnSpan",
    "Encoded",
    "RoleSample",
    "Renderer",
    "render",
    "render_prompt",
    "FitReport",
    "fit_samples",
]

BOS = "<|bos|>"
END = "<|end|>"
PAD = "<|pad|>"
IGNORE_INDEX = -100
_NEXT = " Next: "


def header(role: str) -> str:
    """The header that opens a turn of `role`."""
    return f"<|{role}|>"


def marker_tokens(roles: Sequence[str]) -> list[str]:
    """Every marker a tokenizer should keep whole: pad, bos, end and the headers of context and agent roles."""
    return [PAD, BOS, END, *(header(role) for role in (*CONTEXT_ROLES, *roles))]


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array[{_type_text(schema['items'])}]"
    return str(kind)


def tools_text(tools: Sequence[Tool]) -> str:
    """Compact tool list, one line per tool: `name(arg: type, optional?: a|b): description`."""
    lines = []
    for tool in tools:
        required = set(tool.required)
        args = ", ".join(
            f"{name}{'' if name in required else '?'}: {_type_text(schema)}" for name, schema in tool.properties.items()
        )
        lines.append(f"{tool.name}({args}): {tool.description}".rstrip(": "))
    return "\n".join(lines)


def turn_text(turn: Turn) -> str:
    """The body of a turn: content, `thought Next: role`, or one JSON call per line."""
    if turn.next_role is not None:
        return f"{turn.thought}{_NEXT}{turn.next_role}" if turn.thought else _NEXT.strip() + " " + turn.next_role
    if turn.calls:
        return "\n".join(
            json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False) for call in turn.calls
        )
    return turn.content or ""


def system_text(trajectory: Trajectory) -> str | None:
    """The system block: the trajectory's first system turn (if any) followed by the tool list (if any)."""
    parts = []
    first = trajectory.turns[0] if trajectory.turns else None
    if first is not None and first.role == "system" and first.content:
        parts.append(first.content)
    if trajectory.tools:
        parts.append("Tools:\n" + tools_text(trajectory.tools))
    return "\n".join(parts) if parts else None


def _pieces(trajectory: Trajectory, next_role: str | None) -> list[tuple[str | None, str, str | None, int]]:
    """(header role, body, end marker, turn index) per block; turn index -1 for the system block."""
    blocks: list[tuple[str | None, str, str | None, int]] = []
    system = system_text(trajectory)
    if system is not None:
        blocks.append(("system", system, END, -1))
    skip_first = bool(trajectory.turns) and trajectory.turns[0].role == "system"
    for index, turn in enumerate(trajectory.turns):
        if index == 0 and skip_first:
            continue
        blocks.append((turn.role, turn_text(turn), END, index))
    if next_role is not None:
        blocks.append((next_role, "", None, len(trajectory.turns)))
    return blocks


def render_text(trajectory: Trajectory, *, bos: bool = False) -> str:
    """The rendered trajectory as one string (e.g. to train a tokenizer on)."""
    out = [BOS] if bos else []
    for role, body, end, _ in _pieces(trajectory, None):
        out.append(f"{header(role or '')}{body}{end or ''}")
    return "".join(out)


@dataclass(frozen=True)
class TurnSpan:
    """Where one block sits in the token sequence; `[label_start, end)` is what the role produced."""

    turn_index: int
    role: str
    start: int
    label_start: int
    end: int

    @property
    def learned(self) -> bool:
        """Whether this block carries labels (an agent-role turn)."""
        return self.label_start < self.end and self.role not in CONTEXT_ROLES


@dataclass
class Encoded:
    """A rendered trajectory: token ids, one role id and one label per token, and the span of every block."""

    input_ids: list[int]
    role_ids: list[int]
    labels: list[int]
    spans: list[TurnSpan] = field(default_factory=list)
    trajectory_id: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_dict(self) -> dict[str, list[int]]:
        """The training sample: input_ids, role_ids, labels."""
        return {"input_ids": self.input_ids, "role_ids": self.role_ids, "labels": self.labels}

    def cut(self, length: int) -> Encoded:
        """The first `length` tokens (callers pick a length at a block boundary)."""
        return Encoded(
            input_ids=self.input_ids[:length],
            role_ids=self.role_ids[:length],
            labels=self.labels[:length],
            spans=[span for span in self.spans if span.end <= length],
            trajectory_id=self.trajectory_id,
        )


@dataclass
class RoleSample:
    """A per-role view of one role turn: the sequence up to the end of that turn, labels on that turn only."""

    trajectory_id: str
    turn_index: int
    role: str
    input_ids: list[int]
    role_ids: list[int]
    labels: list[int]

    def to_dict(self) -> dict[str, Any]:
        """The sample as plain data (input_ids, role_ids, labels, role, turn_index)."""
        return {
            "input_ids": self.input_ids,
            "role_ids": self.role_ids,
            "labels": self.labels,
            "role": self.role,
            "turn_index": self.turn_index,
            "trajectory_id": self.trajectory_id,
        }


class Renderer:
    """Renders trajectories with one tokenizer and one ordered list of agent roles (role name → role id)."""

    def __init__(self, tokenizer: Any, roles: Sequence[str]) -> None:
        roles = list(roles)
        if not roles or len(set(roles)) != len(roles):
            raise ValueError(f"roles: got {roles}; give distinct role names in id order, e.g. {['reasoner']}")
        clash = sorted(set(roles) & set(CONTEXT_ROLES))
        if clash:
            raise ValueError(f"roles: {clash} name context turns; rename the role, e.g. 'answerer'")
        self.tokenizer = tokenizer
        self.roles = roles
        self.role_index = {role: index for index, role in enumerate(roles)}
        self._marker_ids: dict[str, list[int]] = {}
        bos_id = getattr(tokenizer, "bos_token_id", None)
        self.bos_ids: list[int] = [int(bos_id)] if bos_id is not None else []
        self.end_ids = self.marker_ids(END)

    def marker_ids(self, text: str) -> list[int]:
        """Token ids of a marker (one id with a tokenizer from `mor.base`, several with others)."""
        if text not in self._marker_ids:
            self._marker_ids[text] = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._marker_ids[text]

    def _bodies(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        try:
            encoded = self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)
        except TypeError:
            encoded = self.tokenizer(texts, add_special_tokens=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def _role_of(self, role: str, where: str) -> int:
        try:
            return self.role_index[role]
        except KeyError:
            raise ValueError(
                f"{where}: turn role {role!r} is not one of the roles {self.roles} nor a context role "
                f"{list(CONTEXT_ROLES)}; add it to the spec's mor.roles or map the data's roles"
            ) from None

    def encode(self, trajectory: Trajectory, *, next_role: str | None = None) -> Encoded:
        """Render `trajectory`; with `next_role`, append that role's header as the generation prompt."""
        blocks = _pieces(trajectory, next_role)
        bodies = self._bodies([body for _, body, _, _ in blocks])
        # The agent role that consumes each block: its own for role turns, the next role turn's for context.
        owners: list[int] = [0] * len(blocks)
        upcoming = next_role
        for position in range(len(blocks) - 1, -1, -1):
            role = blocks[position][0] or ""
            if role not in CONTEXT_ROLES:
                upcoming = role
            where = f"trajectory {trajectory.id!r}"
            owners[position] = self._role_of(upcoming, where) if upcoming is not None else 0
        input_ids: list[int] = list(self.bos_ids)
        role_ids: list[int] = [owners[0] if owners else 0] * len(self.bos_ids)
        labels: list[int] = [IGNORE_INDEX] * len(self.bos_ids)
        spans: list[TurnSpan] = []
        for (role, _, end, turn_index), body, owner in zip(blocks, bodies, owners, strict=True):
            role = role or ""
            start = len(input_ids)
            head = self.marker_ids(header(role))
            tail = self.end_ids if end is not None else []
            produced = body + tail
            input_ids += head + produced
            role_ids += [owner] * (len(head) + len(produced))
            learn = role not in CONTEXT_ROLES and end is not None
            labels += [IGNORE_INDEX] * len(head) + (produced if learn else [IGNORE_INDEX] * len(produced))
            spans.append(TurnSpan(turn_index, role, start, start + len(head), len(input_ids)))
        return Encoded(input_ids, role_ids, labels, spans, trajectory.id)

    def prompt(self, trajectory: Trajectory, role: str) -> Encoded:
        """The generation prompt for `role`: the trajectory so far plus `role`'s header, no labels."""
        self._role_of(role, "prompt")
        encoded = self.encode(trajectory, next_role=role)
        encoded.labels = [IGNORE_INDEX] * len(encoded.input_ids)
        return encoded

    def role_samples(self, trajectory: Trajectory | Encoded) -> list[RoleSample]:
        """One sample per role turn: tokens up to the end of the turn, labels only on that turn's output."""
        encoded = trajectory if isinstance(trajectory, Encoded) else self.encode(trajectory)
        out = []
        for span in encoded.spans:
            if not span.learned:
                continue
            labels = [IGNORE_INDEX] * span.label_start + encoded.labels[span.label_start : span.end]
            out.append(
                RoleSample(
                    trajectory_id=encoded.trajectory_id,
                    turn_index=span.turn_index,
                    role=span.role,
                    input_ids=encoded.input_ids[: span.end],
                    role_ids=encoded.role_ids[: span.end],
                    labels=labels,
                )
            )
        return out


def render(trajectory: Trajectory, tokenizer: Any, roles: Sequence[str]) -> Encoded:
    """Render a trajectory for training: input_ids, role_ids and labels (see the module docstring)."""
    return Renderer(tokenizer, roles).encode(trajectory)


def render_prompt(trajectory: Trajectory, tokenizer: Any, roles: Sequence[str], role: str) -> Encoded:
    """Render the trajectory so far plus `role`'s header: what the agent feeds the model to generate `role`."""
    return Renderer(tokenizer, roles).prompt(trajectory, role)


@dataclass
class FitReport:
    """What `fit_samples` did to sequences longer than `max_seq_len`."""

    kept: int = 0
    cut: int = 0
    dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    longest: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return f"kept {self.kept}, cut at a turn boundary {self.cut}, dropped {self.dropped} (longest {self.longest})"


def fit_samples(
    encoded: Iterable[Encoded],
    max_seq_len: int,
    *,
    overflow: Literal["drop", "cut", "error"] = "drop",
) -> tuple[list[Encoded], FitReport]:
    """Apply `max_seq_len` without ever cutting a label span: drop the sample, or cut it after the last whole
    block that fits (`cut`), or raise (`error`). The report counts what happened."""
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len: got {max_seq_len}, must be ≥ 1; e.g. 1024")
    report = FitReport()
    out: list[Encoded] = []
    for sample in encoded:
        report.longest = max(report.longest, len(sample))
        if len(sample) <= max_seq_len:
            out.append(sample)
            report.kept += 1
            continue
        if overflow == "error":
            raise ValueError(
                f"trajectory {sample.trajectory_id!r}: {len(sample)} tokens > max_seq_len {max_seq_len}; raise "
                "train.max_seq_len or drop long trajectories"
            )
        if overflow == "cut":
            boundary = max((s.end for s in sample.spans if s.end <= max_seq_len and s.learned), default=0)
            if boundary:
                out.append(sample.cut(boundary))
                report.cut += 1
                continue
        report.dropped += 1
        report.dropped_ids.append(sample.trajectory_id)
    return out, report
