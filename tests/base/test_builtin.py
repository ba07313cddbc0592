from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mor.base import build_builtin, builtin_config, builtin_names
from mor.data import DEFAULT_ROLES


def test_packaged_config() -> None:
    assert "tiny-llama" in builtin_names()
    config = builtin_config("tiny-llama")
    assert config.model["model_type"] == "llama"
    assert config.vocab_size >= 512
    with pytest.raises(ValueError, match="known built-in bases"):
        builtin_config("huge-llama")


def test_build_is_deterministic_and_cached(tmp_path: Path, texts: list[str]) -> None:
    model, tokenizer = build_builtin("tiny-llama", texts=texts, roles=DEFAULT_ROLES, cache_dir=tmp_path / "a")
    again, _ = build_builtin("tiny-llama", texts=texts, roles=DEFAULT_ROLES, cache_dir=tmp_path / "b")
    for (name, tensor), (_, other) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(tensor, other), name
    config = builtin_config("tiny-llama")
    assert model.config.hidden_size == config.model["hidden_size"]
    assert model.config.num_hidden_layers == config.model["num_hidden_layers"]
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|end|>")
    assert not model.training
    built = list((tmp_path / "a" / "builtin").iterdir())
    assert len(built) == 1 and (built[0] / "BUILT").is_file()
    stamp = (built[0] / "config.json").stat().st_mtime_ns
    build_builtin("tiny-llama", texts=texts, roles=DEFAULT_ROLES, cache_dir=tmp_path / "a")
    assert (built[0] / "config.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    build_builtin("tiny-llama", texts=texts[:50], roles=DEFAULT_ROLES, cache_dir=tmp_path / "a")
    assert len(list((tmp_path / "a" / "builtin").iterdir())) == 2  # other texts, other tokenizer


def test_builtin_needs_texts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass texts="):
        build_builtin("tiny-llama", texts=[], roles=DEFAULT_ROLES, cache_dir=tmp_path)
