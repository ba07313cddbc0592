"""Errors raised by the store: each names the field, the value, the rule and a fix."""

from __future__ import annotations

import traceback

__all__ = ["AlreadyExistsError", "InvalidValueError", "NotFoundError", "StoreError", "error_text"]

_MAX_ERROR_CHARS = 8000


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class InvalidValueError(StoreError, ValueError):
    """A value given to a store function breaks a rule (bad cron, unknown status, ...)."""

    def __init__(self, field: str, value: object, rule: str, fix: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}: got {value!r}, {rule}; {fix}")


class NotFoundError(StoreError, LookupError):
    """A row looked up by name or id does not exist."""

    def __init__(self, what: str, key: object, fix: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} not found; {fix}")


class AlreadyExistsError(StoreError):
    """A row with the same unique key already exists."""

    def __init__(self, what: str, key: object, fix: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} already exists; {fix}")


def error_text(error: BaseException) -> str:
    """The text stored for a failed run or fire: type and message, then the traceback, cut to 8000 characters."""
    text = f"{type(error).__name__}: {error}\n\n" + "".join(traceback.format_exception(error))
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 20] + "\n... (truncated)"
