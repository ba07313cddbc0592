"""Builds synthetic multi-role trajectories from the tool catalog, split into train and a held-out test set.

Held-out guarantees (tested): every free argument value of a test call (cities, dates, amounts, names, ...) is on
the test side of the value split, so it never occurs as an argument in training; every pair of tools a test
trajectory combines was never combined in training; and no test trajectory offers the same candidate-tool set as a
training trajectory. Single tools and schema values (enums, booleans) are necessarily shared by both sides.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn
from mor.data.synthetic.catalog import Ask, ToolDef, catalog_tools
from mor.data.synthetic.toolbox import SyntheticToolbox, observation_text
from mor.data.synthetic.values import NoValueError, ValueSplit

__all__ = ["CATEGORIES", "build_trajectories"]

CATEGORIES: dict[str, float] = {
    "single": 0.42,
    "multi": 0.2,
    "chain": 0.08,
    "no_tool": 0.1,
    "recovery": 0.1,
    "give_up": 0.1,
}
"""Share of each kind of trajectory (chains appear in training only; their share of the test set goes to single)."""

_DISTRACTORS = 2
_TEST_PAIR_SHARE = 0.3
_THOUGHT_DONE = "I have all the results I need."
_THOUGHT_GIVE_UP = "The tool reported an error, so I cannot finish this task."
_THOUGHT_NO_TOOL = "No tool is needed for this request."


@dataclass(frozen=True)
class _Chain:
    first: str
    second: str
    text: str
    from_observation: Mapping[str, str]


_CHAINS = (
    _Chain(
        "search_flights",
        "book_flight",
        "Find a flight from {origin} to {destination} on {date} and book it for {passenger}.",
        {"flight_id": "flight_id"},
    ),
    _Chain(
        "find_restaurants",
        "book_table",
        "Find a {cuisine} restaurant in {city} and book a table there for {people} people on {date}.",
        {"restaurant_id": "restaurant_id"},
    ),
    _Chain("lookup_contact", "send_email", "Look up {name} and send them an email about {subject}.", {"to": "email"}),
)

_NO_TOOL: tuple[tuple[str, dict[str, str], str, tuple[str, ...]], ...] = (
    ("Say hello to {name}.", {"name": "person"}, "Hello, {name}!", ("{name}",)),
    ("Repeat after me: {text}", {"text": "text"}, "{text}", ("{text}",)),
    ("What can you do?", {}, "I can help by calling the tools I was given.", ("tools",)),
    ("Thank you for your help!", {}, "You are welcome!", ("welcome",)),
    ("Who are you?", {}, "I am an assistant that uses tools.", ("assistant",)),
)


class _Retry(Exception):
    """This draw cannot make a valid trajectory; draw again."""


class _Episode:
    """Accumulates the turns of one trajectory while running the tools for real."""

    def __init__(self, query: str, box: SyntheticToolbox) -> None:
        self.turns: list[Turn] = [Turn(role="user", content=query)]
        self.box = box
        self.used: list[str] = []

    def call(self, thought: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        call_id = f"call_{len(self.used) + 1}"
        self.turns.append(Turn(role="reasoner", thought=thought, next_role="executor"))
        self.turns.append(Turn(role="executor", calls=[ToolCall(name=name, arguments=arguments, id=call_id)]))
        observation = self.box.execute(name, arguments)
        self.turns.append(Turn(role="observation", content=observation_text(observation), call_id=call_id))
        self.used.append(name)
        return observation

    def finish(self, thought: str, answer: str) -> None:
        self.turns.append(Turn(role="reasoner", thought=thought, next_role="summarizer"))
        self.turns.append(Turn(role="summarizer", content=answer))


def _ordered(definition: ToolDef, args: dict[str, Any]) -> dict[str, Any]:
    return {p.name: args[p.name] for p in definition.params if p.name in args}


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return text.format(**{key: _show(value) for key, value in values.items()})


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class _Builder:
    def __init__(self, definitions: Sequence[ToolDef], values: ValueSplit, seed: int) -> None:
        self.defs = {d.name: d for d in definitions}
        self.values = values
        self.box = SyntheticToolbox(definitions)
        self.chains = [c for c in _CHAINS if c.first in self.defs and c.second in self.defs]
        chained = {frozenset((c.first, c.second)) for c in self.chains}
        pairs = [p for p in itertools.combinations(sorted(self.defs), 2) if frozenset(p) not in chained]
        random.Random(seed * 7919 + 1).shuffle(pairs)
        cut = max(1, round(len(pairs) * _TEST_PAIR_SHARE)) if len(pairs) > 1 else 0
        self.pairs = {"test": pairs[:cut], "train": pairs[cut:]}
        probe = random.Random(seed * 7919 + 2)
        self.recoverable = [d for d in definitions if self._probe(d, probe, lambda o: "suggestion" in o, {})]
        self.fallible = [
            d
            for d in definitions
            if self._probe(d, probe, lambda o: "error" in o and "suggestion" not in o, d.give_up_kinds)
        ]

    def _probe(
        self, definition: ToolDef, rng: random.Random, hit: Callable[[dict[str, Any]], bool], kinds: Mapping[str, str]
    ) -> bool:
        """Whether some sampled call of this tool produces the wanted kind of observation."""
        for _ in range(40):
            for split in ("train", "test"):
                try:
                    args = self.sample_args(definition, rng.choice(definition.asks), split, rng, kinds)
                except _Retry:
                    continue
                if hit(self.box.execute(definition.name, args)):
                    return True
        return False

    # -- sampling -------------------------------------------------------------------------------------------------

    def sample_args(
        self, definition: ToolDef, ask: Ask, split: str, rng: random.Random, kinds: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for name in ask.placeholders:
            param = definition.param(name)
            if param.enum is not None:
                args[name] = rng.choice(param.enum)
            else:
                kind = (kinds or {}).get(name, param.kind)
                try:
                    args[name] = self.values.sample(str(kind), split, rng)
                except NoValueError:
                    raise _Retry() from None
        args.update(ask.fixed)
        return _ordered(definition, args)

    def successful_call(self, definition: ToolDef, split: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        for _ in range(20):
            ask = rng.choice(definition.asks)
            args = self.sample_args(definition, ask, split, rng)
            if "error" not in self.box.execute(definition.name, args):
                return _fill(ask.text, args), args
        raise _Retry()

    # -- categories -----------------------------------------------------------------------------------------------

    def single(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        definition = self.defs[rng.choice(sorted(self.defs))]
        query, args = self.successful_call(definition, split, rng)
        episode = _Episode(query, self.box)
        observation = episode.call(self._thought(definition, args), definition.name, args)
        answer = _fill(definition.answer, {**args, **observation})
        episode.finish(_THOUGHT_DONE, answer)
        return episode, [_show(observation[key]) for key in definition.answer_keys]

    def multi(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        if not self.pairs[split]:
            raise _Retry()
        names = list(rng.choice(self.pairs[split]))
        rng.shuffle(names)
        first, second = (self.defs[n] for n in names)
        query1, args1 = self.successful_call(first, split, rng)
        query2, args2 = self.successful_call(second, split, rng)
        episode = _Episode(f"{query1} Also, {_lower_first(query2)}", self.box)
        obs1 = episode.call(self._thought(first, args1), first.name, args1)
        obs2 = episode.call(self._thought(second, args2, again=True), second.name, args2)
        answer = f"{_fill(first.answer, {**args1, **obs1})} {_fill(second.answer, {**args2, **obs2})}"
        episode.finish(_THOUGHT_DONE, answer)
        keys = [_show(obs1[k]) for k in first.answer_keys] + [_show(obs2[k]) for k in second.answer_keys]
        return episode, keys

    def chain(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        if split != "train" or not self.chains:
            raise _Retry()
        chain = rng.choice(self.chains)
        first, second = self.defs[chain.first], self.defs[chain.second]
        values: dict[str, Any] = {}
        for name in Ask(chain.text).placeholders:
            owner = first if name in {p.name for p in first.params} else second
            values.update(self.sample_args(owner, Ask("{" + name + "}"), split, rng))
        args1 = _ordered(first, {k: v for k, v in values.items() if k in {p.name for p in first.params}})
        episode = _Episode(_fill(chain.text, values), self.box)
        obs1 = episode.call(self._thought(first, args1), first.name, args1)
        if "error" in obs1:
            raise _Retry()
        second_args = {k: v for k, v in values.items() if k in {p.name for p in second.params}}
        second_args.update({param: obs1[key] for param, key in chain.from_observation.items()})
        args2 = _ordered(second, second_args)
        obs2 = episode.call(self._thought(second, args2, again=True), second.name, args2)
        if "error" in obs2:
            raise _Retry()
        answer = f"{_fill(first.answer, {**args1, **obs1})} {_fill(second.answer, {**args2, **obs2})}"
        episode.finish(_THOUGHT_DONE, answer)
        return episode, [_show(obs2[k]) for k in second.answer_keys]

    def no_tool(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        text, kinds, answer, keys = rng.choice(_NO_TOOL)
        try:
            values = {name: self.values.sample(kind, split, rng) for name, kind in kinds.items()}
        except NoValueError:
            raise _Retry() from None
        episode = _Episode(_fill(text, values), self.box)
        episode.finish(_THOUGHT_NO_TOOL, _fill(answer, values))
        return episode, [_fill(key, values) for key in keys]

    def recovery(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        if not self.recoverable:
            raise _Retry()
        definition = rng.choice(self.recoverable)
        for _ in range(20):
            ask = rng.choice(definition.asks)
            args = self.sample_args(definition, ask, split, rng)
            failed = self.box.execute(definition.name, args)
            if "suggestion" not in failed:
                continue
            retry = _ordered(definition, {**args, **failed["suggestion"]})
            if "error" in self.box.execute(definition.name, retry):
                continue
            episode = _Episode(_fill(ask.text, args), self.box)
            episode.call(self._thought(definition, args), definition.name, args)
            change = ", ".join(f"{key} {_show(value)}" for key, value in failed["suggestion"].items())
            thought = f"The tool suggests {change}, so I will call {definition.name} again."
            observation = episode.call(thought, definition.name, retry)
            episode.finish(_THOUGHT_DONE, _fill(definition.answer, {**retry, **observation}))
            return episode, [_show(observation[key]) for key in definition.answer_keys]
        raise _Retry()

    def give_up(self, split: str, rng: random.Random) -> tuple[_Episode, list[str]]:
        if not self.fallible:
            raise _Retry()
        definition = rng.choice(self.fallible)
        for _ in range(20):
            ask = rng.choice(definition.asks)
            if definition.give_up_kinds and not set(definition.give_up_kinds) & set(ask.placeholders):
                continue
            args = self.sample_args(definition, ask, split, rng, definition.give_up_kinds)
            observation = self.box.execute(definition.name, args)
            if "error" not in observation or "suggestion" in observation:
                continue
            episode = _Episode(_fill(ask.text, args), self.box)
            episode.call(self._thought(definition, args), definition.name, args)
            error = observation["error"]
            episode.finish(_THOUGHT_GIVE_UP, f"Sorry, I could not complete your request: {error}.")
            return episode, [error]
        raise _Retry()

    @staticmethod
    def _thought(definition: ToolDef, args: Mapping[str, Any], *, again: bool = False) -> str:
        # Short and value-free: the reasoner decides which tool, the executor copies the values.
        return f"{'Next' if again else 'First'} I will call {definition.name}."


def _candidates(
    builder: _Builder, used: Sequence[str], rng: random.Random, forbidden: set[frozenset[str]]
) -> list[str]:
    needed = list(dict.fromkeys(used))
    others = [name for name in sorted(builder.defs) if name not in needed]
    extra = _DISTRACTORS if needed else _DISTRACTORS + 1
    for attempt in range(40):
        count = min(len(others), extra + attempt // 20)
        names = needed + rng.sample(others, count)
        if frozenset(names) not in forbidden:
            rng.shuffle(names)
            return names
    raise _Retry()


def build_trajectories(
    *,
    tools: int,
    trajectories: int,
    seed: int,
    test_fraction: float,
    value_holdout: float,
    categories: Mapping[str, float] | None = None,
) -> tuple[list[Tool], list[Trajectory], list[Trajectory]]:
    """Generate the catalog's first `tools` tools and `trajectories` trajectories, split train / test."""
    if trajectories < 2:
        raise ValueError(f"trajectories: got {trajectories}, need at least 2 (one train, one test); e.g. 2000")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: got {test_fraction}, must be in (0, 1); e.g. 0.1")
    definitions = catalog_tools(tools)
    builder = _Builder(definitions, ValueSplit(seed, value_holdout), seed)
    weights = dict(categories or CATEGORIES)
    unknown = set(weights) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"categories: unknown {sorted(unknown)}; known: {sorted(CATEGORIES)}")
    n_test = min(trajectories - 1, max(1, round(trajectories * test_fraction)))
    seen_sets: set[frozenset[str]] = set()
    train = _split(builder, "train", trajectories - n_test, seed, weights, set(), seen_sets)
    test = _split(builder, "test", n_test, seed, weights, seen_sets, set())
    return [d.tool() for d in definitions], train, test


def _split(
    builder: _Builder,
    split: str,
    count: int,
    seed: int,
    weights: Mapping[str, float],
    forbidden: set[frozenset[str]],
    seen_sets: set[frozenset[str]],
) -> list[Trajectory]:
    rng = random.Random(f"synthetic:{seed}:{split}")
    names = [name for name, weight in weights.items() if weight > 0 and not (name == "chain" and split == "test")]
    shares = [weights[name] for name in names]
    makers: dict[str, Callable[[str, random.Random], tuple[_Episode, list[str]]]] = {
        "single": builder.single,
        "multi": builder.multi,
        "chain": builder.chain,
        "no_tool": builder.no_tool,
        "recovery": builder.recovery,
        "give_up": builder.give_up,
    }
    out: list[Trajectory] = []
    seen_queries: set[str] = set()
    failures = 0
    while len(out) < count:
        category = rng.choices(names, shares)[0]
        try:
            episode, answer_keys = makers[category](split, rng)
            offered = _candidates(builder, episode.used, rng, forbidden)
        except _Retry:
            failures += 1
            if failures > 50 * count + 1000:
                raise RuntimeError(f"synthetic generator cannot fill the {split} split (seed {seed})") from None
            continue
        query = episode.turns[0].content or ""
        if category != "no_tool" and query in seen_queries:
            continue
        seen_queries.add(query)
        seen_sets.add(frozenset(offered))
        out.append(
            Trajectory(
                id=f"synthetic-{seed}-{split}-{len(out):05d}",
                tools=[builder.defs[name].tool() for name in offered],
                turns=episode.turns,
                metadata=TrajectoryMeta(
                    source="synthetic",
                    split=split,
                    category=category,
                    answer_contains=answer_keys,
                    tool_combination=sorted(set(episode.used)),
                ),
            )
        )
    return out
