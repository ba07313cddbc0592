"""The built-in base's constructed copy circuits: offset heads, the induction head with its bos sink, and errors."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.base import build_builtin, builtin_config
from mor.base.circuits import CopyCircuits, install_copy_circuits
from mor.data import DEFAULT_ROLES


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> tuple[LlamaForCausalLM, object]:
    model, tokenizer = build_builtin(
        "tiny-llama", texts=texts, roles=DEFAULT_ROLES, cache_dir=tmp_path_factory.mktemp("circuits")
    )
    model.set_attn_implementation("eager")
    return model, tokenizer


def _repeated(tokenizer: object, alphabet: int, length: int, seed: int) -> torch.Tensor:
    """bos + a random sequence + the same sequence again (rows of a batch)."""
    generator = torch.Generator().manual_seed(seed)
    low = max(tokenizer.all_special_ids) + 1
    sequence = torch.randint(low, low + alphabet, (3, length), generator=generator)
    return torch.cat([torch.full((3, 1), tokenizer.bos_token_id), sequence, sequence], dim=1)


def test_offset_heads_attend_one_and_two_back(built: tuple[LlamaForCausalLM, object]) -> None:
    model, tokenizer = built
    ids = _repeated(tokenizer, 500, 200, seed=0)
    with torch.no_grad():
        attention = model(ids, output_attentions=True).attentions[0]
    positions = torch.arange(3, ids.shape[1])
    assert attention[:, 0][:, positions, positions - 1].mean() > 0.95
    assert attention[:, 1][:, positions, positions - 2].mean() > 0.95


def test_untrained_base_continues_a_repeated_sequence(built: tuple[LlamaForCausalLM, object]) -> None:
    model, tokenizer = built
    length = 200
    ids = _repeated(tokenizer, 500, length, seed=1)
    with torch.no_grad():
        output = model(ids, output_attentions=True)
    predicted = output.logits[:, length + 1 : -1].argmax(-1)
    first_pass = output.logits[:, 1:length].argmax(-1)
    assert (predicted == ids[:, length + 2 :]).float().mean() > 0.6  # copies what followed last time (chance: 1 in 500)
    assert (first_pass == ids[:, 2 : length + 1]).float().mean() < 0.05  # nothing to copy yet
    sink = output.attentions[1][:, 0][:, 5:length, 0].mean()
    assert sink > 0.9  # with no earlier match the induction head rests on bos


def test_two_tokens_of_context_disambiguate(built: tuple[LlamaForCausalLM, object]) -> None:
    model, tokenizer = built
    length = 150
    ids = _repeated(tokenizer, 10, length, seed=2)  # ten symbols: one token of context is ambiguous
    with torch.no_grad():
        logits = model(ids).logits
    accuracy = (logits[:, length + 1 : -1].argmax(-1) == ids[:, length + 2 :]).float().mean()
    assert accuracy > 0.25  # one-token matching would be near chance (0.1) here


def test_builtin_config_has_circuits_and_untied_head(built: tuple[LlamaForCausalLM, object]) -> None:
    model, _ = built
    config = builtin_config("tiny-llama")
    assert config.circuits is not None
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


def _llama(**overrides: object) -> LlamaForCausalLM:
    fields = dict(
        hidden_size=160,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        vocab_size=64,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1.0e12},
    )
    fields.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**fields))


@pytest.mark.parametrize(
    ("overrides", "circuits", "message"),
    [
        ({"hidden_size": 96}, CopyCircuits(token_norm=5.0), r"circuits\.code_dim: got 36, expected at most"),
        ({"tie_word_embeddings": True}, CopyCircuits(), r"model\.tie_word_embeddings: .*false"),
        (
            {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}},
            CopyCircuits(),
            r"circuits\.match_span: .*raise rope_theta",
        ),
        ({}, CopyCircuits(token_norm=13.0), r"circuits\.token_norm: got 13\.0"),
        ({"num_hidden_layers": 1}, CopyCircuits(), r"model\.num_hidden_layers: got 1, expected at least 2"),
    ],
)
def test_impossible_layouts_are_refused(overrides: dict[str, object], circuits: CopyCircuits, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        install_copy_circuits(_llama(**overrides), circuits, bos_token_id=0, seed=0)


def test_circuits_change_the_cache_key(texts: list[str]) -> None:
    from dataclasses import replace

    from mor.base.builtin import builtin_fingerprint

    config = builtin_config("tiny-llama")
    stronger = replace(config, circuits=replace(config.circuits, match=30.0))
    assert builtin_fingerprint(config, DEFAULT_ROLES, texts[:5]) != builtin_fingerprint(
        stronger, DEFAULT_ROLES, texts[:5]
    )
