"""Copy circuits written into a freshly initialised Llama, so a small frozen base can copy from its context.

A random frozen base cannot copy an argument value it never saw in training from the user's query into a call:
nothing in its weights attends by content. Large models learn such circuits in pre-training ("previous-token" and
"induction" heads); a tiny built-in base gets them by construction instead, everything else stays random:

- the residual stream reserves four subspaces of `code_dim` dimensions: the current token's code, the previous
  token's code, the code of the token two back, and the output space the LM head reads; plus one constant
  dimension and one that marks the bos token;
- layer 0, heads 0 and 1: attend one and two positions back (rotary phases chosen so the score peaks at that
  offset) and write those tokens' codes into the previous-token subspaces;
- layer 1, head 0: an induction head. Its query is (current token, previous token), its key (previous token, token
  two back), so it finds where the last two tokens occurred before and copies the token that followed; with no
  match it rests on bos, whose value is zero. The content uses only rotary pairs that turn by well under a radian
  across `match_span` positions;
- head 0 of every later layer: a copy head whose value/output copy the attended token's code into the output space
  while its query/key stay random, so the adapters learn where to copy from (the argument value after "from", ...).

The untrained base therefore only echoes its context (near-zero task accuracy); trained adapters decide what and
when to copy. All codes are random unit vectors drawn from the builtin's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import LlamaForCausalLM

__all__ = ["CopyCircuits", "install_copy_circuits"]


@dataclass(frozen=True)
class CopyCircuits:
    """Strengths and sizes of the constructed circuits (the builtin JSON's `circuits` object)."""

    code_dim: int = 36
    token_norm: float = 10.0
    offset_pairs: int = 6
    offset_sharpness: float = 60.0
    match: float = 25.0
    sink: float = 16.0
    output_gain: float = 4.0
    match_span: int = 1024


def _need(condition: bool, field: str, got: object, expected: str) -> None:
    if not condition:
        raise ValueError(f"circuits.{field}: got {got!r}, expected {expected}")


def _content_pairs(inv_freq: torch.Tensor, span: int) -> list[int]:
    """Rotary pairs that turn by at most half a radian across `span` positions."""
    return [index for index, freq in enumerate(inv_freq.tolist()) if freq * span <= 0.5]


def install_copy_circuits(model: LlamaForCausalLM, circuits: CopyCircuits, *, bos_token_id: int, seed: int) -> None:
    """Overwrite the embeddings, LM head and a few attention heads of `model` with the copy circuits (in place)."""
    config = model.config
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    code = circuits.code_dim
    _need(hidden >= 4 * code + 2, "code_dim", code, f"at most (hidden_size - 2) / 4 = {(hidden - 2) // 4}")
    _need(
        circuits.token_norm**2 < hidden,
        "token_norm",
        circuits.token_norm,
        f"below sqrt(hidden_size) = {hidden**0.5:.2f}",
    )
    _need(
        heads >= 2 and config.num_key_value_heads == heads,
        "model.num_key_value_heads",
        config.num_key_value_heads,
        f"equal to num_attention_heads ({heads}) and at least 2 heads",
    )
    _need(config.num_hidden_layers >= 2, "model.num_hidden_layers", config.num_hidden_layers, "at least 2")
    _need(not config.tie_word_embeddings, "model.tie_word_embeddings", True, "false (the LM head reads its own space)")
    _need(head_dim >= code, "model.head_dim", head_dim, f"at least code_dim ({code})")
    inv_freq = model.model.rotary_emb.inv_freq.float()
    content = _content_pairs(inv_freq, circuits.match_span)
    _need(
        len(content) >= 9,
        "match_span",
        circuits.match_span,
        f"a span the rotary frequencies leave nearly still in at least 9 pairs (got {len(content)}); raise rope_theta",
    )
    _need(
        circuits.offset_pairs < content[0],
        "offset_pairs",
        circuits.offset_pairs,
        f"fewer than the first slow rotary pair ({content[0]})",
    )

    current, previous, before = range(0, code), range(code, 2 * code), range(2 * code, 3 * code)
    output = range(3 * code, 4 * code)
    constant, bos_flag = 4 * code, 4 * code + 1
    norm = circuits.token_norm
    const_value = math.sqrt(hidden - norm * norm)  # every token's vector has squared norm = hidden: RMS exactly 1

    generator = torch.Generator().manual_seed(seed)
    codes = torch.randn(model.config.vocab_size, code, generator=generator)
    codes = codes / codes.norm(dim=1, keepdim=True)
    codes[bos_token_id] = 0.0  # bos is the attention sink: attending to it copies nothing

    with torch.no_grad():
        embed = torch.zeros(model.config.vocab_size, hidden)
        embed[:, list(current)] = norm * codes
        embed[:, constant] = const_value
        embed[bos_token_id, bos_flag] = norm
        model.model.embed_tokens.weight.copy_(embed)
        head = torch.zeros(model.config.vocab_size, hidden)
        head[:, list(output)] = circuits.output_gain * codes
        model.lm_head.weight.copy_(head)

        layers = model.model.layers
        for index, (offset, target) in enumerate(((1, previous), (2, before))):
            _offset_head(
                layers[0].self_attn, index, head_dim, offset, target, current, constant, const_value, inv_freq, circuits
            )

        # Layer 1's input: current + previous + two-back codes and the constant, RMS-normalised.
        rms = math.sqrt((3 * norm * norm + const_value**2) / hidden)
        attention = layers[1].self_attn
        rows = _clear_head(attention, 0, head_dim)
        sink_pair, matched = content[0], content[1:]
        dims = list(matched) + [pair + head_dim // 2 for pair in matched]
        half = min(len(dims) // 2, code)
        weight = math.sqrt(circuits.match / 2 * math.sqrt(head_dim)) * rms / norm
        for slot in range(half):
            attention.q_proj.weight[rows.start + dims[slot], current[slot]] = weight
            attention.k_proj.weight[rows.start + dims[slot], previous[slot]] = weight
            attention.q_proj.weight[rows.start + dims[half + slot], previous[slot]] = weight
            attention.k_proj.weight[rows.start + dims[half + slot], before[slot]] = weight
        sink = math.sqrt(circuits.sink * math.sqrt(head_dim))
        attention.q_proj.weight[rows.start + sink_pair, constant] = sink * rms / const_value
        attention.k_proj.weight[rows.start + sink_pair, bos_flag] = sink / norm  # bos enters layer 1 with RMS 1
        _copy_values(attention, rows, current, output)
        for layer in layers[2:]:
            rows = _clear_head(layer.self_attn, 0, head_dim, keep_query_key=True)
            _copy_values(layer.self_attn, rows, current, output)


def _clear_head(attention: torch.nn.Module, index: int, head_dim: int, *, keep_query_key: bool = False) -> range:
    rows = range(index * head_dim, (index + 1) * head_dim)
    projections = (attention.v_proj,) if keep_query_key else (attention.q_proj, attention.k_proj, attention.v_proj)
    for projection in projections:
        projection.weight[rows.start : rows.stop].zero_()
    attention.o_proj.weight[:, rows.start : rows.stop].zero_()
    return rows


def _copy_values(attention: torch.nn.Module, rows: range, source: range, target: range) -> None:
    for slot, (read, write) in enumerate(zip(source, target, strict=True)):
        attention.v_proj.weight[rows.start + slot, read] = 1.0
        attention.o_proj.weight[write, rows.start + slot] = 1.0


def _offset_head(
    attention: torch.nn.Module,
    index: int,
    head_dim: int,
    offset: int,
    target: range,
    source: range,
    constant: int,
    const_value: float,
    inv_freq: torch.Tensor,
    circuits: CopyCircuits,
) -> None:
    """A head whose score peaks `offset` positions back whatever the content, copying that token's code."""
    rows = _clear_head(attention, index, head_dim)
    for pair in range(circuits.offset_pairs):
        share = circuits.offset_sharpness / circuits.offset_pairs * (1.0 if pair < 3 else 0.5)
        scale = math.sqrt(share * math.sqrt(head_dim)) / const_value
        angle = offset * float(inv_freq[pair])
        attention.q_proj.weight[rows.start + pair, constant] = scale
        attention.k_proj.weight[rows.start + pair, constant] = scale * math.cos(angle)
        attention.k_proj.weight[rows.start + pair + head_dim // 2, constant] = scale * math.sin(angle)
    _copy_values(attention, rows, source, target)
