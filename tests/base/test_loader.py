from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.base import BaseRef, load_base, parse_base_ref, train_tokenizer
from mor.data import DEFAULT_ROLES


@pytest.fixture()
def saved_model(tmp_path: Path, texts: list[str]) -> Path:
    """A tiny Llama and a tokenizer written with save_pretrained, as a user's checkpoint would be."""
    tokenizer = train_tokenizer(texts, roles=DEFAULT_ROLES, vocab_size=400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    target = tmp_path / "ckpt"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_parse_forms() -> None:
    assert parse_base_ref({"builtin": "tiny-llama"}) == BaseRef("builtin", "tiny-llama")
    assert parse_base_ref(SimpleNamespace(builtin=None, path=Path("/x"), hub=None)) == BaseRef("path", "/x")
    assert parse_base_ref({"hub": "org/model", "revision": "v1"}) == BaseRef("hub", "org/model", "v1")
    assert parse_base_ref("tiny-llama").kind == "builtin"
    assert parse_base_ref("./ckpt").kind == "path"
    assert parse_base_ref("meta-llama/Llama-3.2-1B-Instruct") == BaseRef("hub", "meta-llama/Llama-3.2-1B-Instruct")
    with pytest.raises(ValueError, match="exactly one of builtin, path or hub"):
        parse_base_ref({"builtin": "tiny-llama", "hub": "x/y"})


def test_path_route_loads_what_was_saved(saved_model: Path) -> None:
    model, tokenizer = load_base({"path": str(saved_model)})
    reference = LlamaForCausalLM.from_pretrained(saved_model).eval()
    ids = torch.tensor([tokenizer("<|user|>What is the weather in Paris?<|end|>")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, reference(input_ids=ids).logits)
    assert tokenizer.convert_tokens_to_ids("<|executor|>") is not None
    assert not model.training


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"base_model.path: .*does not exist; give a directory written by"):
        load_base({"path": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_base({"path": str(tmp_path / "empty")})


def test_hub_route_never_downloads_when_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache and downloads are off"):
        load_base({"hub": "mor-tests/does-not-exist"}, local_files_only=True)


def test_builtin_route_needs_a_cache_dir(texts: list[str]) -> None:
    with pytest.raises(ValueError, match="needs cache_dir"):
        load_base({"builtin": "tiny-llama"}, texts=texts)


def test_builtin_route(tmp_path: Path, texts: list[str]) -> None:
    model, tokenizer = load_base({"builtin": "tiny-llama"}, cache_dir=tmp_path, texts=texts)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer)
