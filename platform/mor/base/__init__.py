"""Base models: the built-in tiny Llama with a tokenizer trained on the job's data, or any local/hub checkpoint."""

from mor.base.builtin import BuiltinConfig, build_builtin, builtin_config, builtin_names
from mor.base.loader import BaseRef, load_base, load_tokenizer, parse_base_ref
from mor.base.tokenizer import train_tokenizer

__all__ = [
    "BaseRef",
    "BuiltinConfig",
    "build_builtin",
    "builtin_config",
    "builtin_names",
    "load_base",
    "load_tokenizer",
    "parse_base_ref",
    "train_tokenizer",
]
