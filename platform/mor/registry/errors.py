"""Errors raised by mor.registry; each message names the field, the value, the rule and a fix."""

from __future__ import annotations

__all__ = ["RegistryError"]


class RegistryError(RuntimeError):
    """A tracking or registry operation could not be done (bad input, missing version, failed upload)."""
