"""A job's log as a person reads it: without the lines the CLI parses (`MOR_PROGRESS {...}`, `MOR_SUMMARY {...}`),
without terminal colour codes, and without Ray's "Found multiple active Ray instances" noise (a warning, or a
traceback of that error caught inside Ray) that a job on a machine running several Ray clusters logs although it
succeeds. `mor job logs --raw` prints the log as Ray stored it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from mor.cluster import PROGRESS_MARKER

__all__ = ["clean_log"]

SUMMARY_MARKER = "MOR_SUMMARY"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# Ray prefixes lines that come from workers with their origin: "(RayTrainWorker pid=123, ip=10.0.0.1) ".
_RAY_PREFIX = re.compile(r"^\([^()]*\)\s")
_PROTOCOL = re.compile(rf"(^|\s)({PROGRESS_MARKER}|{SUMMARY_MARKER}) \{{")
_NOISE = "Found multiple active Ray instances"
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def _body(line: str) -> str:
    return _RAY_PREFIX.sub("", line, count=1)


def _is_traceback_body(line: str) -> bool:
    """A frame or source line of a traceback (indented), a blank line, or the words that chain two tracebacks."""
    body = _body(line)
    return not body.strip() or body[:1].isspace() or body.strip() in _CHAINED or body.startswith(_TRACEBACK)


def clean_log(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a job log (newlines stripped) a person needs; works on a log being followed, line by line."""
    held: list[str] = []  # a traceback, until its last line says whether it is Ray's noise
    for raw in lines:
        line = _ANSI.sub("", raw)
        if held:
            if _is_traceback_body(line):
                held.append(line)
                continue
            held.append(line)  # the exception line ends the traceback
            if _NOISE not in line:
                yield from held
            held = []
            continue
        body = _body(line)
        if body.startswith(_TRACEBACK):
            held = [line]
            continue
        if _PROTOCOL.search(line) or _NOISE in line:
            continue
        yield line
    yield from held  # a traceback cut off at the end of the log: show it
