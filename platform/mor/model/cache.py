"""How a Hugging Face causal LM's forward takes its KV cache, across transformers versions.

transformers 5.24 renamed the forward argument `past_key_values` to `cache` (the old name is accepted, with a
warning, until its removal). Code that passes or reads the cache asks here instead of spelling either name.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

#: Names under which a causal LM's forward has taken its KV cache, newest first.
CACHE_ARGUMENTS = ("cache", "past_key_values")


def cache_argument_name(model: nn.Module) -> str:
    """The name `model.forward` takes its KV cache under: `cache` where declared, else `past_key_values`.

    A wrapper whose forward passes `**kwargs` on (a `MoRModel`, a PEFT model) is asked through its `.model`.
    """
    while True:
        parameters = inspect.signature(model.forward).parameters
        for name in CACHE_ARGUMENTS:
            if name in parameters:
                return name
        inner = getattr(model, "model", None)
        if not isinstance(inner, nn.Module) or inner is model:
            return CACHE_ARGUMENTS[-1]
        model = inner


def find_cache(kwargs: Mapping[str, Any]) -> Any | None:
    """The KV cache among a forward call's keyword arguments, under whichever name the caller used."""
    for name in CACHE_ARGUMENTS:
        value = kwargs.get(name)
        if value is not None:
            return value
    return None


def cached_length(cache: Any | None) -> int:
    """Tokens already held by `cache` (0 without one)."""
    if cache is None:
        return 0
    if not hasattr(cache, "get_seq_length"):
        raise TypeError(f"cache: got {type(cache).__name__}, expected a transformers Cache with get_seq_length()")
    return int(cache.get_seq_length())
