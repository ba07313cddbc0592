"""Constrained decoding: per-step masks over the vocabulary that keep every role's output usable.

- `CallsConstraint` (executor): the output is one JSON call per line, `{"name": <a function of the request's
  tools>, "arguments": <valid for that function's JSON schema>}`, then the end marker. The grammar is compiled and
  matched by llguidance (Microsoft's structured-generation engine, a Rust library with Python bindings that needs no
  torch build of its own); the token masks come from its matcher.
- `ReasonerConstraint`: free text, then `Next: <role>` with a role the request allows (all by default; only the
  summarizer for `tool_choice: none`, only the executor for `required`), then the end marker. The end marker is
  masked until a role has been named, and the handover is forced when the token budget runs out, so the role
  gate never sees an unparsable reasoner turn.
- `TextConstraint` (summarizer and custom roles): any text without role markers, then the end marker.

A constraint is created per generation and then used only by the engine's thread.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = [
    "CallsConstraint",
    "CallsGrammar",
    "ReasonerConstraint",
    "TextConstraint",
    "TokenConstraint",
    "Vocabulary",
]

_CALL_FORMAT = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
"""JSON layout of training data (`json.dumps` defaults): the executor is held to what it learned."""


@runtime_checkable
class TokenConstraint(Protocol):
    """What the engine asks a constraint at every decoding step of one sequence."""

    def allowed(self, remaining: int) -> torch.Tensor | None:
        """A bool mask `(vocab,)` of the tokens allowed next (None: any token), with `remaining` tokens left."""
        ...

    def advance(self, token: int) -> None:
        """Record the token that was chosen."""
        ...

    @property
    def done(self) -> bool:
        """Whether the output is complete (generation must stop)."""
        ...


class Vocabulary:
    """What constraints need to know about a tokenizer and the model's logits: sizes, special ids, token texts,
    the end marker, and (built on first use) llguidance's view of the tokenizer."""

    def __init__(self, tokenizer: Any, *, logits_size: int, end_text: str) -> None:
        self.tokenizer = tokenizer
        self.size = int(logits_size)
        self.end_ids = list(tokenizer(end_text, add_special_tokens=False)["input_ids"])
        if not self.end_ids:
            raise ValueError(f"end marker {end_text!r}: the tokenizer maps it to no tokens")
        self.end_text = end_text
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
            if getattr(added, "special", False):
                special.add(int(token_id))
        self.special_ids = special
        self.end_is_special = len(self.end_ids) == 1 and self.end_ids[0] in special
        self._lock = threading.Lock()
        self._texts: list[str] | None = None
        self._by_text: dict[str, list[int]] | None = None
        self._ll_tokenizer: Any = None
        usable = torch.zeros(self.size, dtype=torch.bool)
        usable[: min(len(tokenizer), self.size)] = True
        for token_id in special:
            if 0 <= token_id < self.size:
                usable[token_id] = False
        self.text_mask = usable
        """Tokens of ordinary text (no special token, nothing past the tokenizer's vocabulary)."""
        self.text_or_end_mask = usable.clone()
        self.text_or_end_mask[self.end_ids[0]] = True

    def mask_of(self, token_ids: Sequence[int]) -> torch.Tensor:
        """A mask allowing exactly `token_ids`."""
        mask = torch.zeros(self.size, dtype=torch.bool)
        mask[list(token_ids)] = True
        return mask

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_texts(self) -> list[str]:
        """The text of every token id below the tokenizer's size (decoded one by one, once)."""
        with self._lock:
            if self._texts is None:
                count = min(len(self.tokenizer), self.size)
                self._texts = [self.tokenizer.decode([token_id]) for token_id in range(count)]
            return self._texts

    def ids_of_text(self, text: str) -> list[int]:
        """The ordinary (non-special) tokens whose text is exactly `text`."""
        by_text = self._by_text
        if by_text is None:
            by_text = {}
            for token_id, token_text in enumerate(self.token_texts()):
                if token_text and token_id not in self.special_ids:
                    by_text.setdefault(token_text, []).append(token_id)
            self._by_text = by_text  # built once; a concurrent second build would give the same dict
        return by_text.get(text, [])

    def ll_tokenizer(self) -> Any:
        """llguidance's tokenizer for this vocabulary (the end marker as its end-of-sequence token)."""
        with self._lock:
            if self._ll_tokenizer is None:
                import llguidance.hf

                eos = self.end_ids[0] if self.end_is_special else getattr(self.tokenizer, "eos_token_id", None)
                self._ll_tokenizer = llguidance.hf.from_tokenizer(
                    self.tokenizer, n_vocab=len(self.tokenizer), eos_token=eos
                )
            return self._ll_tokenizer


class TextConstraint:
    """Free text without role markers or other special tokens, ended by the end marker (or the budget)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._done = False

    def allowed(self, remaining: int) -> torch.Tensor | None:
        return self._vocab.text_or_end_mask

    def advance(self, token: int) -> None:
        if self._vocab.end_is_special and token == self._vocab.end_ids[0]:
            self._done = True

    @property
    def done(self) -> bool:
        return self._done


_NEXT = re.compile(r"(?:^|\s)Next:")


class ReasonerConstraint:
    """`<thought> Next: <role>` + end marker, with `<role>` one of `next_roles` (see the module docstring)."""

    def __init__(self, vocab: Vocabulary, next_roles: Sequence[str]) -> None:
        if not next_roles:
            raise ValueError("next_roles: got none; the reasoner must be able to hand over to some role")
        self._vocab = vocab
        self._targets = [f" {role}" for role in next_roles]
        self._generated: list[int] = []
        self._forced: list[int] = []
        self._state = "free"  # free → choose → end → done
        self._suffix = ""
        handover = vocab.encode(" Next:")
        self._handover = handover
        longest = max(len(vocab.encode(target)) for target in self._targets)
        self._reserve = len(handover) + longest + len(vocab.end_ids) + 1

    @property
    def done(self) -> bool:
        return self._state == "done"

    def allowed(self, remaining: int) -> torch.Tensor | None:
        vocab = self._vocab
        if not self._forced:
            if self._state == "free" and remaining <= self._reserve:
                self._forced = list(self._handover)
            elif self._state == "choose":
                tail = self._completion()
                if remaining <= len(vocab.encode(tail)) + len(vocab.end_ids):
                    self._forced = vocab.encode(tail)
            elif self._state == "end":
                self._forced = list(vocab.end_ids)
        if self._forced:
            return vocab.mask_of(self._forced[:1])
        if self._state == "free":
            return vocab.text_mask if vocab.end_is_special else None
        return self._choice_mask(remaining)

    def _completion(self) -> str:
        """The rest of the first target the suffix so far can still become."""
        for target in self._targets:
            if target.startswith(self._suffix):
                return target[len(self._suffix) :]
        return self._targets[0]

    def _choice_mask(self, remaining: int) -> torch.Tensor:
        """Tokens that keep the text after `Next:` a prefix of an allowed target (looked up, not scanned) and leave
        enough of the budget to finish that target and write the end marker."""
        allowed: list[int] = []
        end_cost = len(self._vocab.end_ids)
        for target in self._targets:
            if not target.startswith(self._suffix):
                continue
            rest = target[len(self._suffix) :]
            for end in range(1, len(rest) + 1):
                if 1 + len(self._vocab.encode(rest[end:])) + end_cost <= remaining:
                    allowed.extend(self._vocab.ids_of_text(rest[:end]))
        if not allowed:  # cannot happen for a byte-level vocabulary; force the canonical completion instead
            allowed = self._vocab.encode(self._completion())[:1]
        return self._vocab.mask_of(allowed)

    def advance(self, token: int) -> None:
        if self._forced and token == self._forced[0]:
            self._forced.pop(0)
        else:
            self._forced = []
        self._generated.append(token)
        if self._state == "end":
            if not self._forced:
                self._state = "done"
            return
        if self._state == "choose":
            self._suffix += self._vocab.token_texts()[token] if token < len(self._vocab.token_texts()) else ""
            if self._suffix in self._targets:
                self._state = "end"
            return
        text = self._vocab.tokenizer.decode(self._generated, skip_special_tokens=True)
        for match in reversed(list(_NEXT.finditer(text))):
            rest = text[match.end() :]
            if any(target.startswith(rest) for target in self._targets):
                self._suffix = rest
                self._state = "end" if rest in self._targets else "choose"
                if self._state == "end":
                    self._forced = []
                break


@dataclass(frozen=True)
class CallsGrammar:
    """A compiled llguidance grammar for the calls of one request (cached by tools and options)."""

    grammar: str
    names: tuple[str, ...]
    parallel: bool


class _GrammarCache:
    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[str, CallsGrammar] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: str) -> CallsGrammar | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: CallsGrammar) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


def _arguments_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """`parameters` narrowed to objects: arguments are always a JSON object, even where a schema also admits null."""
    kind = parameters.get("type")
    if kind == "object":
        return parameters
    return {**parameters, "type": "object"}


def _call_schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": _arguments_schema(parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
        "x-guidance": _CALL_FORMAT,
    }


def calls_lark(functions: Sequence[tuple[str, dict[str, Any]]], *, parallel: bool, end_text: str | None) -> str:
    """The Lark grammar (llguidance dialect) of the executor's output for `(name, parameters)` functions.

    `end_text`: the end marker as literal text when it is not a single special token (else the matcher's
    end-of-sequence token ends the output).
    """
    if not functions:
        raise ValueError("functions: got none; the executor needs at least one function to call")
    calls = " | ".join(f"call_{index}" for index in range(len(functions)))
    start = 'call ("\\n" call)*' if parallel else "call"
    if end_text is not None:
        start += " " + json.dumps(end_text)
    lines = [f"start: {start}", f"call: {calls}"]
    lines += [
        f"call_{index}: %json {json.dumps(_call_schema(name, params))}"
        for index, (name, params) in enumerate(functions)
    ]
    return "\n".join(lines)


class CallsConstraint:
    """Executor output that is always a list of valid calls of the allowed functions (llguidance matcher)."""

    _cache = _GrammarCache()

    def __init__(self, vocab: Vocabulary, grammar: CallsGrammar) -> None:
        from llguidance import LLMatcher

        self._vocab = vocab
        self._matcher = LLMatcher(vocab.ll_tokenizer(), grammar.grammar, log_level=0)
        if self._matcher.is_error():
            raise ValueError(f"executor grammar: {self._matcher.get_error()}")
        self._tokenizer_size = min(len(vocab.tokenizer), vocab.size)
        self._done = False

    @classmethod
    def compile(
        cls, vocab: Vocabulary, functions: Sequence[tuple[str, dict[str, Any]]], *, parallel: bool
    ) -> CallsGrammar:
        """The grammar for these functions (cached); raises ValueError naming a function whose schema the
        decoder cannot enforce."""
        from llguidance import LLMatcher

        end_text = None if vocab.end_is_special else vocab.end_text
        key = json.dumps([list(functions), parallel, end_text], sort_keys=True, default=str)
        cached = cls._cache.get(key)
        if cached is not None:
            return cached
        for name, params in functions:
            is_error, messages = LLMatcher.validate_grammar_with_warnings(
                LLMatcher.grammar_from_lark(calls_lark([(name, params)], parallel=False, end_text=end_text)),
                vocab.ll_tokenizer(),
            )
            if is_error or messages:
                first_lines = [message.strip().splitlines()[0] for message in messages if message.strip()]
                raise ValueError(f"function {name!r}: {'; '.join(first_lines) or 'grammar error'}")
        grammar = CallsGrammar(
            grammar=LLMatcher.grammar_from_lark(calls_lark(functions, parallel=parallel, end_text=end_text)),
            names=tuple(name for name, _ in functions),
            parallel=parallel,
        )
        cls._cache.put(key, grammar)
        return grammar

    def allowed(self, remaining: int) -> torch.Tensor | None:
        if self._matcher.is_stopped() or self._matcher.is_error():
            return self._vocab.mask_of(self._vocab.end_ids[:1])
        bits = np.unpackbits(np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        mask = torch.zeros(self._vocab.size, dtype=torch.bool)
        mask[: self._tokenizer_size] = torch.from_numpy(bits[: self._tokenizer_size].astype(bool))
        return mask

    def advance(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            self._done = True
            return
        if self._matcher.is_stopped():
            self._done = True

    @property
    def done(self) -> bool:
        return self._done

    @property
    def accepted(self) -> bool:
        """Whether the output so far is a complete, valid list of calls."""
        return self._matcher.is_accepting() or (self._matcher.is_stopped() and not self._matcher.is_error())
