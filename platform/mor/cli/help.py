"""Help in words, and command groups loaded on first use.

Typer renders every parameter's Python type in help (`<bool>`, `<list[str]>`, `<str>`) and a required argument as
`{model_uri}`. `MorGroup`, the class of the `mor` command, turns its whole command tree (built by Typer) into
classes that say what a value is instead: nothing after a flag, `a|b|c` for a closed set, `N`, `SECONDS`, `TEXT`,
`PATH`, a metavar where one is given, and `MODEL_URI` / `[NAME]` for arguments.

It also loads a sub-command group only when it is used (`lazy`): `mor --help` and `mor job list` do not import
what `mor eval` needs (SQLAlchemy, the suites).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["LazyGroup", "MorCommand", "MorGroup", "in_words"]

#: Words for the value of an option by its Python type.
_TYPE_WORDS: dict[type, str] = {int: "N", float: "NUMBER", str: "TEXT", bool: "BOOLEAN"}


def _value_word(option: TyperOption) -> str | None:
    """What an option takes, in words; None for a flag."""
    if option.is_flag or option.count:
        return None
    if option.metavar is not None:
        return option.metavar
    descriptor = option.type_descriptor
    if descriptor.is_choice:
        word = "|".join(str(getattr(choice, "value", choice)) for choice in descriptor.choices or ())
    elif descriptor.is_path:
        word = "PATH"
    else:
        annotation = descriptor.annotation
        if descriptor.is_list:
            annotation = getattr(annotation, "__args__", (str,))[0]
        word = _TYPE_WORDS.get(annotation, "TEXT") if isinstance(annotation, type) else "TEXT"
    return f"{word} (repeatable)" if descriptor.is_list else word


class _WordsOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return _value_word(self)


class _WordsArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's name and help say what it is

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _words(param: Any) -> Any:
    if type(param) is TyperOption:
        param.__class__ = _WordsOption
    elif type(param) is TyperArgument:
        param.__class__ = _WordsArgument
    return param


class MorCommand(TyperCommand):
    """A command whose help says in words what each parameter takes."""

    def get_params(self, ctx: Any) -> list[Any]:
        return [_words(param) for param in super().get_params(ctx)]


@dataclass(frozen=True)
class LazyGroup:
    """A sub-command group imported on first use: `module.attribute` is its `typer.Typer`; `help` is what
    `mor --help` shows for it without importing it."""

    module: str
    attribute: str
    help: str


class MorGroup(TyperGroup):
    """A command group whose help is in words (for its whole tree) and whose `lazy` groups load on first use."""

    lazy: ClassVar[dict[str, LazyGroup]] = {}
    #: The order `--help` lists commands in (others follow in the order they were added).
    order: ClassVar[tuple[str, ...]] = ()
    _listing: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        in_words(self)

    def get_params(self, ctx: Any) -> list[Any]:
        # Also the options Typer adds after building the group (--install-completion) and --help.
        return [_words(param) for param in super().get_params(ctx)]

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(self.commands) + [name for name in self.lazy if name not in self.commands]
        rank = {name: index for index, name in enumerate(self.order)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = self.lazy.get(cmd_name)
        if entry is not None and cmd_name not in self.commands:
            if self._listing:  # `mor --help` lists the group by its help; nothing is imported for that
                return TyperGroup(name=cmd_name, help=entry.help)
            sub_app = getattr(importlib.import_module(entry.module), entry.attribute)
            group = typer.main.get_command(sub_app)
            group.name = cmd_name
            self.commands[cmd_name] = in_words(group)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def in_words(command: Any) -> Any:
    """Give `command` and everything under it the classes that render help in words; return it."""
    if type(command) is TyperCommand:
        command.__class__ = MorCommand
    elif type(command) is TyperGroup:
        command.__class__ = MorGroup
    for sub in getattr(command, "commands", {}).values():
        in_words(sub)
    return command
