"""Tables never cut an id or a number: on a narrow terminal the free text wraps instead; piped, a table is plain
aligned text with whole values."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from mor.cli.render import make_console, plain_lines, print_table

JOB_ID = "mor-quickstart-65b5f3a1c0ffee42"
TEXT = "a free-text message that is much longer than the narrow terminal can show on one line " * 2


def _table() -> Table:
    table = Table(title="jobs")
    table.add_column("id", no_wrap=True)
    table.add_column("accuracy", justify="right", no_wrap=True)
    table.add_column("message")
    table.add_row(JOB_ID, "0.353", TEXT)
    table.add_row("mor-b", "[green]1.000[/]", "short")
    return table


def test_on_a_narrow_terminal_ids_and_numbers_stay_whole_and_text_wraps() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=60, color_system=None)
    print_table(console, _table())
    text = out.getvalue()
    assert JOB_ID in text and "0.353" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 60
    messages = [line.split("│")[3] for line in text.splitlines() if line.count("│") == 4]
    assert len(messages) > 4  # the message wrapped onto several lines
    assert " ".join(" ".join(messages).split()) == f"{' '.join(TEXT.split())} short"  # and nothing of it was lost


def test_off_a_terminal_a_table_is_plain_aligned_text() -> None:
    out = io.StringIO()
    console = Console(file=out, width=40)
    assert not console.is_terminal
    print_table(console, _table())
    lines = out.getvalue().splitlines()
    assert lines[0] == "jobs"
    assert lines[1].split() == ["id", "accuracy", "message"]
    assert lines[2].startswith(f"{JOB_ID}     0.353  a free-text message")
    assert lines[2].endswith("on one line")  # one row per line, no width limit
    assert lines[3].split() == ["mor-b", "1.000", "short"]  # markup gone, numbers right-aligned
    assert lines[3].index("1.000") == lines[2].index("0.353")
    assert lines == list(plain_lines(_table()))


def test_the_command_console_does_not_wrap_off_a_terminal() -> None:
    console = make_console()
    assert not console.is_terminal and console.soft_wrap


def test_a_terminal_too_narrow_for_the_whole_values_gets_one_block_per_row() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=45, color_system=None)
    print_table(console, _table())
    lines = out.getvalue().splitlines()
    assert "┃" not in out.getvalue()  # no table: it would have squeezed a column to nothing
    assert lines[1].split() == ["id", JOB_ID] and lines[2].split() == ["accuracy", "0.353"]
    blank = next(index for index, line in enumerate(lines) if index > 3 and not line.strip())  # between rows
    message = " ".join(line.strip() for line in lines[3:blank])
    assert " ".join(message.split()) == f"message {' '.join(TEXT.split())}"
    words = [line.split() for line in lines]
    assert ["id", "mor-b"] in words and ["accuracy", "1.000"] in words
    assert max(len(line) for line in lines) <= 45
