"""Decontamination: drop training trajectories whose query overlaps an evaluation item a user will score on.

An index holds the query texts of evaluation items (BFCL categories, StableToolBench groups, held-out synthetic
trajectories), each entry remembering its suite, group and item id. A training query matches an item when

1. its normalised text equals one of the item's normalised texts (`exact`), or
2. it has at least `n` words and more than `threshold` of its distinct word n-grams occur in that one item
   (`ngram`; the item with the most shared n-grams wins, ties go to the item indexed first).

Normalisation: Unicode NFKC, case folding, apostrophes removed (so "don't", "don’t" and "dont" agree), every other
punctuation or symbol character (Unicode categories P* and S*) replaced by a space, whitespace collapsed. Text
without spaces between words (Chinese, Japanese) is one word, so it only matches exactly.

N-grams are looked up in an inverted index from n-gram hash to the entries holding it, so a check costs one dict
lookup per n-gram of the training query plus the length of the posting lists it hits. Hashes are Python's string
hashes: stable within a process, which is all an in-memory index needs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mor.data.schema import Trajectory
from mor.evals.bfcl.data import CATEGORIES, BfclDataError, check_category, load_items
from mor.evals.stabletoolbench.data import GROUPS, SUITE, StbDataError, check_group, load_group

__all__ = [
    "BFCL_SUITE",
    "DEFAULT_N",
    "DEFAULT_THRESHOLD",
    "HELD_OUT_SUITE",
    "STB_SUITE",
    "ContaminationError",
    "ContaminationIndex",
    "DecontaminationReport",
    "Dropped",
    "EvalEntry",
    "Match",
    "build_index",
    "new_report",
    "screen",
    "decontaminate",
    "normalize",
]

BFCL_SUITE = "bfcl"
STB_SUITE = SUITE
HELD_OUT_SUITE = "synthetic"
DEFAULT_N = 8
DEFAULT_THRESHOLD = 0.5

MatchKind = Literal["exact", "ngram"]

_APOSTROPHES = frozenset("'\u2018\u2019\u02bc\u02bb\u0060\u00b4")


class _PunctuationTable(dict[int, str]):
    """`str.translate` table filled on first sight of each code point: apostrophes go, P*/S* become spaces."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char in _APOSTROPHES:
            value = ""
        elif unicodedata.category(char)[0] in "PS":
            value = " "
        else:
            value = char
        self[code] = value
        return value


_TABLE = _PunctuationTable()


def normalize(text: str) -> str:
    """The text as matching sees it: NFKC, case-folded, punctuation and symbols stripped, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_TABLE).split())


class ContaminationError(ValueError):
    """An index that cannot be built as asked; the message names every bad setting and a fix."""


@dataclass(frozen=True)
class EvalEntry:
    """One indexed evaluation item: where it comes from and its query texts (several for multi-message items)."""

    suite: str
    group: str
    item_id: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    """An evaluation item a training query overlaps: `overlap` is the share of the query's n-grams found in it
    (1.0 for an exact match)."""

    suite: str
    group: str
    item_id: str
    kind: MatchKind
    overlap: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON reports)."""
        return {
            "suite": self.suite,
            "group": self.group,
            "item_id": self.item_id,
            "kind": self.kind,
            "overlap": round(self.overlap, 4),
        }


class ContaminationIndex:
    """Evaluation items' query texts, indexed for exact and word n-gram matching of training queries."""

    def __init__(self, n: int = DEFAULT_N, threshold: float = DEFAULT_THRESHOLD) -> None:
        problems = []
        if not isinstance(n, int) or n < 1:
            problems.append(f"n: got {n!r}, must be a whole number ≥ 1; e.g. n=8")
        if not 0.0 <= threshold < 1.0:
            problems.append(
                f"threshold: got {threshold!r}, must be in [0, 1) (overlap must exceed it); e.g. threshold=0.5"
            )
        if problems:
            raise ContaminationError("; ".join(problems))
        self.n = n
        self.threshold = threshold
        self._entries: list[EvalEntry] = []
        self._exact: dict[str, int] = {}
        self._postings: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[EvalEntry]:
        """The indexed items, in the order they were added."""
        return list(self._entries)

    def counts(self) -> dict[str, int]:
        """Indexed items per suite."""
        counts: dict[str, int] = {}
        for entry in self._entries:
            counts[entry.suite] = counts.get(entry.suite, 0) + 1
        return counts

    def add(self, suite: str, group: str, item_id: str, texts: Iterable[str]) -> None:
        """Index one evaluation item under its query texts (blank texts are ignored)."""
        texts = tuple(text for text in texts if text and text.strip())
        position = len(self._entries)
        self._entries.append(EvalEntry(suite=suite, group=group, item_id=item_id, texts=texts))
        grams: set[int] = set()
        for text in texts:
            words = normalize(text).split()
            if words:
                self._exact.setdefault(" ".join(words), position)
            grams.update(self._grams(words))
        for gram in grams:
            self._postings.setdefault(gram, []).append(position)

    def _grams(self, words: Sequence[str]) -> set[int]:
        n = self.n
        return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}

    def check(self, text: str | None) -> Match | None:
        """The evaluation item `text` overlaps, or None: exact normalised match first, then n-gram overlap."""
        if not text:
            return None
        words = normalize(text).split()
        if not words:
            return None
        position = self._exact.get(" ".join(words))
        if position is not None:
            return self._match(position, "exact", 1.0)
        if len(words) < self.n:
            return None
        grams = self._grams(words)
        shared: dict[int, int] = {}
        postings = self._postings
        for gram in grams:
            for position in postings.get(gram, ()):
                shared[position] = shared.get(position, 0) + 1
        if not shared:
            return None
        # Most shared n-grams; on a tie, the item indexed first.
        position, count = min(shared.items(), key=lambda pair: (-pair[1], pair[0]))
        overlap = count / len(grams)
        return self._match(position, "ngram", overlap) if overlap > self.threshold else None

    def _match(self, position: int, kind: MatchKind, overlap: float) -> Match:
        entry = self._entries[position]
        return Match(suite=entry.suite, group=entry.group, item_id=entry.item_id, kind=kind, overlap=overlap)

    def add_bfcl(self, data_dir: Path, categories: Sequence[str] = CATEGORIES) -> None:
        """Index the user messages of every item of `categories` (all of BFCL v4 by default)."""
        for category in categories:
            for item in load_items(category, data_dir):
                texts = [
                    m["content"] for m in item.messages if m.get("role") == "user" and isinstance(m.get("content"), str)
                ]
                self.add(BFCL_SUITE, item.category, item.id, texts)

    def add_stabletoolbench(self, data_dir: Path, groups: Sequence[str] = GROUPS) -> None:
        """Index the query of every item of `groups` (all six solvable groups by default)."""
        for group in groups:
            for query in load_group(group, data_dir):
                self.add(STB_SUITE, query.group, query.id, [query.query])

    def add_trajectories(self, trajectories: Iterable[Trajectory], suite: str = HELD_OUT_SUITE) -> None:
        """Index held-out trajectories by their query (first user message), grouped by their data source."""
        for trajectory in trajectories:
            if trajectory.query:
                self.add(suite, trajectory.metadata.source, trajectory.id, [trajectory.query])


def build_index(
    data_dir: Path | None = None,
    *,
    bfcl: Sequence[str] | None = None,
    stabletoolbench: Sequence[str] | None = None,
    held_out: Iterable[Trajectory] = (),
    held_out_suite: str = HELD_OUT_SUITE,
    n: int = DEFAULT_N,
    threshold: float = DEFAULT_THRESHOLD,
) -> ContaminationIndex:
    """An index of the evaluation items a user will score on.

    With `data_dir` (the directory holding `bfcl/` and `stabletoolbench/`), `bfcl` and `stabletoolbench` default to
    every category and group; pass a subset to index only those, or `()` to index none. Without `data_dir` only
    `held_out` trajectories are indexed. Names may carry their suite prefix (`bfcl/simple_python`).
    """
    problems: list[str] = []
    categories: list[str] = []
    groups: list[str] = []
    if data_dir is None:
        for name, chosen in (("bfcl", bfcl), ("stabletoolbench", stabletoolbench)):
            if chosen:
                problems.append(f"{name}: got {list(chosen)!r} but no data_dir; give the directory holding {name}/")
    else:
        for category in CATEGORIES if bfcl is None else bfcl:
            try:
                categories.append(check_category(category))
            except BfclDataError as error:
                problems.append(f"bfcl {error}")
        for group in GROUPS if stabletoolbench is None else stabletoolbench:
            try:
                groups.append(check_group(group))
            except StbDataError as error:
                problems.append(f"stabletoolbench {error}")
    try:
        index = ContaminationIndex(n=n, threshold=threshold)
    except ContaminationError as error:
        problems.append(str(error))
    if problems:
        raise ContaminationError("; ".join(problems))
    if data_dir is not None:
        index.add_bfcl(data_dir, categories)
        index.add_stabletoolbench(data_dir, groups)
    index.add_trajectories(held_out, held_out_suite)
    return index


@dataclass(frozen=True)
class Dropped:
    """A training trajectory dropped as contaminated, with the evaluation item it matched."""

    trajectory: Trajectory
    match: Match


@dataclass
class DecontaminationReport:
    """What decontamination checked and dropped, per suite, per `suite/group` and per kind of match."""

    checked: int = 0
    kept: int = 0
    dropped: int = 0
    no_query: int = 0
    dropped_per_suite: dict[str, int] = field(default_factory=dict)
    dropped_per_group: dict[str, int] = field(default_factory=dict)
    dropped_per_kind: dict[str, int] = field(default_factory=dict)
    indexed_per_suite: dict[str, int] = field(default_factory=dict)
    n: int = DEFAULT_N
    threshold: float = DEFAULT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for report.json)."""
        return {
            "checked": self.checked,
            "kept": self.kept,
            "dropped": self.dropped,
            "no_query": self.no_query,
            "dropped_per_suite": dict(self.dropped_per_suite),
            "dropped_per_group": dict(self.dropped_per_group),
            "dropped_per_kind": dict(self.dropped_per_kind),
            "indexed_per_suite": dict(self.indexed_per_suite),
            "n": self.n,
            "threshold": self.threshold,
        }


def screen(
    trajectories: Iterable[Trajectory], index: ContaminationIndex, report: DecontaminationReport
) -> Iterator[Trajectory | Dropped]:
    """Each training trajectory, or a `Dropped` when its query matches an indexed evaluation item, one at a time;
    `report` counts as they pass (its `kept` and `dropped` are final once the iterator is exhausted).

    Trajectories without a user message are kept (there is nothing to compare) and counted as `no_query`.
    """
    for trajectory in trajectories:
        report.checked += 1
        query = trajectory.query
        match = index.check(query) if query else None
        if not query:
            report.no_query += 1
        if match is None:
            report.kept += 1
            yield trajectory
            continue
        report.dropped += 1
        group = f"{match.suite}/{match.group}"
        report.dropped_per_suite[match.suite] = report.dropped_per_suite.get(match.suite, 0) + 1
        report.dropped_per_group[group] = report.dropped_per_group.get(group, 0) + 1
        report.dropped_per_kind[match.kind] = report.dropped_per_kind.get(match.kind, 0) + 1
        yield Dropped(trajectory=trajectory, match=match)


def new_report(index: ContaminationIndex) -> DecontaminationReport:
    """An empty report for checks against `index`."""
    return DecontaminationReport(indexed_per_suite=index.counts(), n=index.n, threshold=index.threshold)


def decontaminate(
    trajectories: Iterable[Trajectory], index: ContaminationIndex
) -> tuple[list[Trajectory], list[Dropped], DecontaminationReport]:
    """Split training trajectories into those kept and those whose query matches an indexed evaluation item
    (`screen`, collected)."""
    kept: list[Trajectory] = []
    dropped: list[Dropped] = []
    report = new_report(index)
    for item in screen(trajectories, index, report):
        (dropped if isinstance(item, Dropped) else kept).append(item)  # type: ignore[arg-type]
    return kept, dropped, report
