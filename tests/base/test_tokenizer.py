from __future__ import annotations

import pytest

from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES, marker_tokens


def test_markers_are_single_special_tokens(texts: list[str]) -> None:
    tokenizer = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=500)
    assert len(tokenizer) == 500
    for marker in marker_tokens(DEFAULT_ROLES):
        ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == marker
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<|bos|>", "<|end|>", "<|pad|>")
    assert tokenizer.decode(tokenizer("<|reasoner|>hi<|end|>")["input_ids"], skip_special_tokens=True) == "hi"


def test_digits_split_and_text_round_trips(texts: list[str]) -> None:
    tokenizer = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=500)
    pieces = tokenizer.tokenize("Convert 2024.75 XQZ to Zürich")
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == ["2", "0", "2", "4", "7", "5"]
    for text in texts[:20] + ["unseen wörds 12345 ✓"]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_training_is_deterministic(texts: list[str]) -> None:
    first = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=400)
    second = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=400)
    assert first.get_vocab() == second.get_vocab()


def test_too_small_vocab_is_refused(texts: list[str]) -> None:
    with pytest.raises(ValueError, match="vocab_size: got 100"):
        train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=100)


def test_a_word_tokenizes_the_same_in_a_query_and_in_json(texts: list[str]) -> None:
    tokenizer = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=500)
    word = tokenizer.tokenize("Qzxville")
    query = tokenizer.tokenize("Book a room in Qzxville tonight")
    call = tokenizer.tokenize('{"city": "Qzxville"}')

    def preceded_by(pieces: list[str]) -> str:
        starts = [i for i in range(len(pieces)) if pieces[i : i + len(word)] == word]
        assert starts, pieces
        return pieces[starts[0] - 1]

    assert preceded_by(query) == "Ġ"  # the space stands alone
    assert preceded_by(call) == '"'
