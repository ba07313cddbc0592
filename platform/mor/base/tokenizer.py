"""A byte-level BPE tokenizer trained with the `tokenizers` library, the role markers as special tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from mor.data.render import BOS, END, PAD, marker_tokens

__all__ = ["train_tokenizer"]


def train_tokenizer(
    texts: Iterable[str],
    *,
    roles: Sequence[str],
    vocab_size: int = 1024,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`.

    Spaces are tokens of their own, so a word tokenizes the same after a space (in a query) as after a quote (in a
    call's JSON) and can be copied token by token; digits are split one per token (numbers never seen in training
    still copy digit by digit); every role marker
    (`<|reasoner|>`, `<|end|>`, ...) is one special token; `<|end|>` is also the end-of-sequence token.
    """
    specials = marker_tokens(roles)
    if vocab_size < 256 + len(specials):
        raise ValueError(
            f"vocab_size: got {vocab_size}, a byte-level tokenizer needs at least {256 + len(specials)} "
            "(256 bytes + the role markers); e.g. 1024"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", "isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=[token for token in specials if token not in (BOS, END, PAD)],
        clean_up_tokenization_spaces=False,
    )
