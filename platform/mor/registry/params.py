"""Flatten a nested spec into MLflow params that respect MLflow's key and value limits."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_PARAM_KEY_LENGTH", "MAX_PARAM_VALUE_LENGTH", "TRUNCATION_MARK", "flatten_params", "param_key"]

# MLflow 3 limits (mlflow/utils/validation.py): keys 250 characters, param values 6000.
MAX_PARAM_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
TRUNCATION_MARK = "...[truncated]"
_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")


def param_key(parts: list[str]) -> str:
    """A valid MLflow key from path parts: dotted, odd characters replaced by `_`, long keys shortened by hash."""
    key = _BAD_KEY_CHARS.sub("_", ".".join(parts)) or "_"
    if len(key) > MAX_PARAM_KEY_LENGTH:
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        key = f"{key[: MAX_PARAM_KEY_LENGTH - 11]}~{digest}"
    return key


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return text


def flatten_params(spec: Mapping[str, Any], *, prefix: str | None = None) -> dict[str, str]:
    """Flatten nested mappings (`mor.roles.executor.top_k`) and lists of mappings (`data.sources.0.synthetic`).

    Lists of scalars stay one param holding their JSON; scalars are written as JSON except strings; values
    longer than MLflow allows are cut and end with `TRUNCATION_MARK`.
    """
    flat: dict[str, str] = {}

    def _walk(value: Any, parts: list[str]) -> None:
        if isinstance(value, Mapping):
            if not value and parts:
                flat[param_key(parts)] = "{}"
            for key, item in value.items():
                _walk(item, [*parts, str(key)])
        elif isinstance(value, list | tuple) and any(isinstance(item, Mapping | list | tuple) for item in value):
            for index, item in enumerate(value):
                _walk(item, [*parts, str(index)])
        else:
            flat[param_key(parts)] = _value_text(list(value) if isinstance(value, tuple) else value)

    _walk(spec, [prefix] if prefix else [])
    return flat
