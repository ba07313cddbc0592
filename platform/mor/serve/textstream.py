"""Incremental detokenization of the summarizer's answer: deltas that never need to be taken back.

A delta holds back what could still change or disappear: an incomplete UTF-8 character, trailing whitespace (the
final answer is stripped), and a tail that may be the start of the end marker or of a stop string. The text
streamed in deltas therefore equals the non-streamed answer exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TextAssembler"]


class TextAssembler:
    """Feed tokens with `push`, get safe deltas; `finish` returns the rest. `text` is the answer so far."""

    def __init__(self, tokenizer: Any, *, end_text: str, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._end_text = end_text
        self._stops = [s for s in stop if s]
        self._ids: list[int] = []
        self._emitted = ""
        self.stopped = False
        """Whether a stop string (or the end marker as text) ended the answer."""

    def _current(self) -> str:
        text = self._tokenizer.decode(self._ids, skip_special_tokens=False).lstrip()
        cut = len(text)
        for marker in (self._end_text, *self._stops):
            found = text.find(marker)
            if found != -1 and found < cut:
                cut = found
                self.stopped = True
        return text[:cut]

    @property
    def text(self) -> str:
        """The answer so far (stripped)."""
        return self._current().rstrip()

    def _safe(self, text: str) -> str:
        while text.endswith("\ufffd"):
            text = text[:-1]
        hold = 0
        for marker in (self._end_text, *self._stops):
            for size in range(min(len(marker) - 1, len(text)), 0, -1):
                if text.endswith(marker[:size]):
                    hold = max(hold, size)
                    break
        text = text[: len(text) - hold]
        return text.rstrip()

    def push(self, token: int) -> str:
        """Add one token; returns the new text that is safe to send."""
        if self.stopped:
            return ""
        self._ids.append(token)
        current = self._current()
        safe = current.rstrip() if self.stopped else self._safe(current)
        if not safe.startswith(self._emitted):  # never expected; keep the stream consistent anyway
            return ""
        delta = safe[len(self._emitted) :]
        self._emitted = safe
        return delta

    def finish(self) -> str:
        """The remaining text after the last token."""
        final = self.text
        if not final.startswith(self._emitted):
            return ""
        delta = final[len(self._emitted) :]
        self._emitted = final
        return delta
