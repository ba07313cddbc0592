"""A role generator that replays reference trajectories: the agent's upper bound, and a check of the harness.

For every role turn of every reference trajectory it stores the exact prompt the agent would build and the tokens
the reference produced next. A prompt it does not know (the agent went off the reference path) gets an empty turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mor.agent.generator import Prompt
from mor.data.render import Renderer
from mor.data.schema import Trajectory

__all__ = ["ReplayGenerator"]


class ReplayGenerator:
    """Answers each known prompt with the reference continuation (body + end marker)."""

    def __init__(self, trajectories: Iterable[Trajectory], renderer: Renderer) -> None:
        self.renderer = renderer
        self._next: dict[tuple[int, ...], list[int]] = {}
        for trajectory in trajectories:
            self.add(trajectory)

    def add(self, trajectory: Trajectory) -> None:
        """Learn the role turns of one reference trajectory."""
        encoded = self.renderer.encode(trajectory)
        for span in encoded.spans:
            if span.learned:
                self._next[tuple(encoded.input_ids[: span.label_start])] = encoded.input_ids[
                    span.label_start : span.end
                ]

    def generate(
        self,
        input_ids: Sequence[int],
        role_ids: Sequence[int],
        role: str,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
    ) -> list[int]:
        """The reference continuation of this exact prompt, or just the end marker when the prompt is unknown."""
        found = self._next.get(tuple(input_ids))
        return list(found[:max_new_tokens]) if found is not None else list(stop_ids)

    def generate_batch(
        self, prompts: Sequence[Prompt], *, max_new_tokens: Sequence[int], stop_ids: Sequence[int]
    ) -> list[list[int]]:
        """`generate` for each prompt."""
        return [
            self.generate(ids, roles, role, max_new_tokens=budget, stop_ids=stop_ids)
            for (ids, roles, role), budget in zip(prompts, max_new_tokens, strict=True)
        ]
