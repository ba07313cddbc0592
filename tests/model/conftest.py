"""Tiny random models of the four architectures MoR must support, built from configs (no downloads)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 97
_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=128,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)

ARCHITECTURES: dict[str, Callable[[], PreTrainedModel]] = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **_COMMON)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=2, **_COMMON)),
    "mistral": lambda: MistralForCausalLM(MistralConfig(num_key_value_heads=2, sliding_window=64, **_COMMON)),
    "phi3": lambda: Phi3ForCausalLM(Phi3Config(num_key_value_heads=4, **_COMMON)),
}


def build_base(architecture: str = "llama", seed: int = 0) -> PreTrainedModel:
    """A tiny randomly initialised causal LM in eval mode, float32."""
    torch.manual_seed(seed)
    return ARCHITECTURES[architecture]().eval()


def perturb_adapters(model: torch.nn.Module, seed: int = 1, std: float = 0.05) -> None:
    """Give every adapter parameter random values (B starts at zero, which would hide most of the math)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".mor_roles." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


@pytest.fixture(params=sorted(ARCHITECTURES))
def architecture(request: pytest.FixtureRequest) -> str:
    """Each supported architecture in turn."""
    return request.param
