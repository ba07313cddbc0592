"""Streamed deltas add up to exactly the non-streamed answer: partial UTF-8, trailing spaces, stop strings and an
end marker written as text are held back until they are known."""

from __future__ import annotations

import pytest

from mor.serve.textstream import TextAssembler


def _stream(tokenizer, text: str, *, stop: list[str] = (), end_text: str = "<|end|>") -> tuple[list[str], str, bool]:
    assembler = TextAssembler(tokenizer, end_text=end_text, stop=stop)
    deltas = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        delta = assembler.push(token)
        assert "\ufffd" not in delta
        if delta:
            deltas.append(delta)
    rest = assembler.finish()
    if rest:
        deltas.append(rest)
    return deltas, assembler.text, assembler.stopped


@pytest.mark.parametrize(
    "text,expected",
    [
        ("  The weather in Paris is 21 °C.  ", "The weather in Paris is 21 °C."),
        ("Café ☕ and 🚀 emoji, ünïcödé", "Café ☕ and 🚀 emoji, ünïcödé"),
        ("line one\nline two \n", "line one\nline two"),
        ("answer<|end|>ignored", "answer"),
    ],
)
def test_deltas_add_up_to_the_answer(tokenizer, text: str, expected: str) -> None:
    deltas, final, _ = _stream(tokenizer, text)
    assert "".join(deltas) == final == expected
    assert len(deltas) > 1 or len(expected) < 8


def test_stop_strings_cut_the_answer(tokenizer) -> None:
    deltas, final, stopped = _stream(tokenizer, "one two STOP three", stop=["STOP", "never"])
    assert stopped and final == "one two" and "".join(deltas) == final


def test_a_prefix_of_a_stop_string_is_held_back_then_released(tokenizer) -> None:
    deltas, final, stopped = _stream(tokenizer, "alpha ST beta", stop=["STOP"])
    assert not stopped and "".join(deltas) == final == "alpha ST beta"


def test_end_marker_as_plain_text(tokenizer) -> None:
    deltas, final, stopped = _stream(tokenizer, "done [[end]] more", end_text="[[end]]")
    assert stopped and final == "done" and "".join(deltas) == "done"
