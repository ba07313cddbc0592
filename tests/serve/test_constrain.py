"""Constrained decoding on adversarial schemas: random walks through the masks only ever end in valid calls, known
valid outputs pass token by token, known invalid ones are cut at the first bad token; the reasoner always hands
over to an allowed role."""

from __future__ import annotations

import json
import random

import pytest
import torch

from mor.agent import parse_calls, parse_reasoner
from mor.agent.parse import ParseFailure
from mor.data import Tool
from mor.data.render import END
from mor.serve.constrain import CallsConstraint, ReasonerConstraint, TextConstraint, Vocabulary, calls_lark
from mor.serve.tools import check_calls

ADVERSARIAL: dict[str, dict] = {
    "enum": {"type": "object", "properties": {"unit": {"enum": ["c", "f", 'k"q', 3, None]}}, "required": ["unit"]},
    "nested": {
        "type": "object",
        "properties": {
            "a": {
                "type": "object",
                "properties": {
                    "b": {
                        "type": "object",
                        "properties": {"c": {"type": "integer"}},
                        "required": ["c"],
                        "additionalProperties": False,
                    }
                },
                "required": ["b"],
                "additionalProperties": False,
            }
        },
        "required": ["a"],
        "additionalProperties": False,
    },
    "array": {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3}},
        "required": ["xs"],
        "additionalProperties": False,
    },
    "numbers": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": -5, "maximum": 5},
            "x": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["n", "x"],
        "additionalProperties": False,
    },
    "strings": {
        "type": "object",
        "properties": {"s": {"type": "string", "maxLength": 6}, "p": {"type": "string", "pattern": "^[a-c]+$"}},
        "required": ["s", "p"],
        "additionalProperties": False,
    },
    "optional": {
        "type": "object",
        "properties": {"r": {"type": "boolean"}, "o": {"type": "string"}},
        "required": ["r"],
        "additionalProperties": False,
    },
    "anyof": {
        "type": "object",
        "properties": {"v": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}},
        "required": ["v"],
        "additionalProperties": False,
    },
    "no_args": {"type": "object", "properties": {}, "additionalProperties": False},
}
TOOLS = [Tool(name=f"f_{name}", parameters=schema) for name, schema in ADVERSARIAL.items()]


@pytest.fixture(scope="module")
def vocab(tokenizer) -> Vocabulary:
    return Vocabulary(tokenizer, logits_size=len(tokenizer) + 3, end_text=END)  # logits wider than the vocabulary


def _functions(tools: list[Tool]) -> list[tuple[str, dict]]:
    return [(tool.name, tool.parameters) for tool in tools]


def _walk(constraint, vocab: Vocabulary, rng: random.Random, *, budget: int, prefer: set[int]) -> list[int]:
    """Random allowed tokens (biased to short structural ones so walks finish) until the constraint is done."""
    out: list[int] = []
    for step in range(budget):
        mask = constraint.allowed(budget - step)
        allowed = mask.nonzero().flatten().tolist() if mask is not None else list(range(vocab.size))
        assert all(token < len(vocab.tokenizer) for token in allowed), "a token past the vocabulary was allowed"
        end = vocab.end_ids[0]
        if end in allowed and rng.random() < 0.7:
            token = end
        else:
            short = [token for token in allowed if token in prefer]
            token = rng.choice(short) if short and rng.random() < 0.6 else rng.choice(allowed)
        out.append(token)
        constraint.advance(token)
        if constraint.done:
            break
    return out


def test_random_walks_only_produce_valid_calls_of_adversarial_schemas(vocab: Vocabulary) -> None:
    texts = vocab.token_texts()
    prefer = {i for i, text in enumerate(texts) if len(text) <= 3 and any(c in text for c in '"}],0123456789')}
    grammar = CallsConstraint.compile(vocab, _functions(TOOLS), parallel=True)
    rng = random.Random(0)
    completed: dict[str, int] = {}
    for _ in range(40):
        constraint = CallsConstraint(vocab, grammar)
        tokens = _walk(constraint, vocab, rng, budget=300, prefer=prefer)
        if not constraint.accepted:
            continue
        assert tokens[-1] == vocab.end_ids[0]
        text = vocab.tokenizer.decode(tokens[:-1], skip_special_tokens=True)
        calls = parse_calls(text, TOOLS)
        assert not isinstance(calls, ParseFailure), (text, calls)
        assert check_calls(calls, TOOLS) is None, text
        for call in calls:
            completed[call.name] = completed.get(call.name, 0) + 1
    assert sum(completed.values()) >= 30 and len(completed) >= 5, completed


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "f_enum", "arguments": {"unit": "k\\"q"}}',
        '{"name": "f_enum", "arguments": {"unit": null}}',
        '{"name": "f_nested", "arguments": {"a": {"b": {"c": -12}}}}',
        '{"name": "f_array", "arguments": {"xs": [1.5, -2, 3e2]}}',
        '{"name": "f_numbers", "arguments": {"n": -5, "x": 0.25}}',
        '{"name": "f_strings", "arguments": {"s": "a\\\\b\\n", "p": "cab"}}',
        '{"name": "f_optional", "arguments": {"r": true}}',
        '{"name": "f_no_args", "arguments": {}}\n{"name": "f_anyof", "arguments": {"v": false}}',
    ],
)
def test_valid_outputs_pass_every_step(vocab: Vocabulary, text: str) -> None:
    constraint = CallsConstraint(vocab, CallsConstraint.compile(vocab, _functions(TOOLS), parallel=True))
    for token in vocab.encode(text) + vocab.end_ids:
        assert constraint.allowed(100)[token], f"{vocab.tokenizer.decode([token])!r} rejected in {text!r}"
        constraint.advance(token)
    assert constraint.done and constraint.accepted
    calls = parse_calls(text, TOOLS)
    assert not isinstance(calls, ParseFailure) and check_calls(calls, TOOLS) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "f_unknown", "arguments": {}}',  # not an offered function
        '{"name": "f_enum", "arguments": {"unit": "x"}}',  # not in the enum
        '{"name": "f_nested", "arguments": {"a": {"b": {}}}}',  # required c missing
        '{"name": "f_nested", "arguments": {"a": {"b": {"c": 1.5}}}}',  # not an integer
        '{"name": "f_array", "arguments": {"xs": []}}',  # minItems
        '{"name": "f_array", "arguments": {"xs": [1, 2, 3, 4]}}',  # maxItems
        '{"name": "f_numbers", "arguments": {"n": 6, "x": 1}}',  # maximum
        '{"name": "f_numbers", "arguments": {"n": 1, "x": 0}}',  # exclusiveMinimum
        '{"name": "f_strings", "arguments": {"s": "abcdefg", "p": "a"}}',  # maxLength
        '{"name": "f_strings", "arguments": {"s": "a", "p": "abd"}}',  # pattern
        '{"name": "f_optional", "arguments": {"o": "x"}}',  # required r missing
        '{"name": "f_optional", "arguments": {"r": true, "z": 1}}',  # additionalProperties
        '{"arguments": {}, "name": "f_no_args"}',  # the trained key order
        "not json at all",
    ],
)
def test_invalid_outputs_are_cut_at_the_first_bad_token(vocab: Vocabulary, text: str) -> None:
    constraint = CallsConstraint(vocab, CallsConstraint.compile(vocab, _functions(TOOLS), parallel=True))
    for token in vocab.encode(text) + vocab.end_ids:
        if not constraint.allowed(100)[token]:
            return
        constraint.advance(token)
    pytest.fail(f"{text!r} was accepted")


def test_single_call_when_parallel_calls_are_off(vocab: Vocabulary) -> None:
    grammar = CallsConstraint.compile(vocab, _functions(TOOLS), parallel=False)
    constraint = CallsConstraint(vocab, grammar)
    for token in vocab.encode('{"name": "f_no_args", "arguments": {}}'):
        constraint.advance(token)
    mask = constraint.allowed(100)
    assert mask[vocab.end_ids[0]] and not any(mask[t] for t in vocab.encode("\n"))


def test_only_the_named_function_can_be_called(vocab: Vocabulary) -> None:
    only = [tool for tool in TOOLS if tool.name == "f_optional"]
    constraint = CallsConstraint(vocab, CallsConstraint.compile(vocab, _functions(only), parallel=True))
    tokens = vocab.encode('{"name": "f_')
    for token in tokens:
        constraint.advance(token)
    allowed = [vocab.tokenizer.decode([t]) for t in constraint.allowed(100).nonzero().flatten().tolist()]
    assert allowed and all("optional".startswith(text) for text in allowed), allowed


@pytest.mark.parametrize(
    "schema,keyword",
    [
        ({"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}}, "uniqueItems"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not"),
    ],
)
def test_schemas_the_decoder_cannot_enforce_are_refused_by_name(vocab: Vocabulary, schema: dict, keyword: str) -> None:
    with pytest.raises(ValueError, match=f"function 'g'.*{keyword}"):
        CallsConstraint.compile(vocab, [("g", schema)], parallel=True)


def test_grammar_text_names_each_function_and_uses_the_trained_layout() -> None:
    lark = calls_lark([("a", {"type": "object"}), ("b", {"type": "object"})], parallel=True, end_text=None)
    assert lark.splitlines()[:2] == ['start: call ("\\n" call)*', "call: call_0 | call_1"]
    schema = json.loads(lark.splitlines()[2].split("%json ", 1)[1])
    assert schema["properties"]["name"] == {"const": "a"} and list(schema["properties"]) == ["name", "arguments"]
    assert schema["x-guidance"] == {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
    assert calls_lark([("a", {})], parallel=False, end_text="<|end|>").splitlines()[0] == 'start: call "<|end|>"'


@pytest.mark.parametrize("next_roles", [["executor", "summarizer"], ["summarizer"], ["executor"]])
def test_reasoner_always_hands_over_to_an_allowed_role(vocab: Vocabulary, next_roles: list[str]) -> None:
    rng = random.Random(1)
    seen: set[str] = set()
    for budget in (6, 9, 14, 40):
        for _ in range(5):
            constraint = ReasonerConstraint(vocab, next_roles)
            tokens = _walk(constraint, vocab, rng, budget=budget, prefer=set())
            assert constraint.done and len(tokens) <= budget
            assert tokens[-1] == vocab.end_ids[0]
            text = vocab.tokenizer.decode(tokens[:-1], skip_special_tokens=True)
            parsed = parse_reasoner(text, next_roles)
            assert not isinstance(parsed, ParseFailure), (budget, text)
            seen.add(parsed[1])
    assert seen == set(next_roles)


def test_reasoner_cannot_end_before_naming_a_role(vocab: Vocabulary) -> None:
    constraint = ReasonerConstraint(vocab, ["executor", "summarizer"])
    assert not constraint.allowed(50)[vocab.end_ids[0]]
    for token in vocab.encode("I will call it. Next:"):
        constraint.advance(token)
    allowed = {vocab.tokenizer.decode([t]) for t in constraint.allowed(50).nonzero().flatten().tolist()}
    assert allowed and all(" executor".startswith(a) or " summarizer".startswith(a) for a in allowed)
    for token in vocab.encode(" summarizer"):
        assert constraint.allowed(50)[token]
        constraint.advance(token)
    assert torch.equal(constraint.allowed(50).nonzero().flatten(), torch.tensor(vocab.end_ids))
    constraint.advance(vocab.end_ids[0])
    assert constraint.done


def test_next_without_a_colon_stays_in_the_thought(vocab: Vocabulary) -> None:
    constraint = ReasonerConstraint(vocab, ["executor"])
    for token in vocab.encode("Next I will call add_numbers. Next: executor"):
        assert constraint.allowed(50)[token]
        constraint.advance(token)
    constraint.advance(vocab.end_ids[0])
    assert constraint.done


def test_text_constraint_forbids_role_markers(vocab: Vocabulary) -> None:
    constraint = TextConstraint(vocab)
    mask = constraint.allowed(10)
    header = vocab.tokenizer.convert_tokens_to_ids("<|reasoner|>")
    assert not mask[header] and mask[vocab.end_ids[0]] and mask[vocab.encode("a")[0]]
    assert not mask[len(vocab.tokenizer) :].any()
    constraint.advance(vocab.end_ids[0])
    assert constraint.done
