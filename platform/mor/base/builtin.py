"""Built-in base models: a Llama-architecture config kept in the package, random init with a fixed seed (plus the
constructed copy circuits of `mor.base.circuits` where the config asks for them), and a tokenizer trained on the
job's own training texts. Built once per (config, roles, texts) and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from mor.base.circuits import CopyCircuits, install_copy_circuits
from mor.base.tokenizer import train_tokenizer

__all__ = ["BuiltinConfig", "builtin_names", "builtin_config", "build_builtin", "builtin_fingerprint"]

_CONFIG_DIR = Path(__file__).with_name("builtin")
_DONE = "BUILT"


@dataclass(frozen=True)
class BuiltinConfig:
    """A built-in base: the Llama config fields, tokenizer settings and the init seed."""

    name: str
    model: dict[str, Any]
    vocab_size: int
    min_frequency: int
    seed: int
    embedding_std: float | None = None
    circuits: CopyCircuits | None = None


def builtin_names() -> list[str]:
    """Names of the built-in bases shipped with the package."""
    return sorted(path.stem for path in _CONFIG_DIR.glob("*.json"))


def builtin_config(name: str) -> BuiltinConfig:
    """The config of a built-in base, read from the package's JSON file."""
    path = _CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"base_model.builtin: got {name!r}, known built-in bases: {builtin_names()}")
    raw = json.loads(path.read_text())
    tokenizer = raw.get("tokenizer", {})
    return BuiltinConfig(
        name=name,
        model=dict(raw["model"]),
        vocab_size=int(tokenizer.get("vocab_size", 1024)),
        min_frequency=int(tokenizer.get("min_frequency", 2)),
        seed=int(raw.get("seed", 0)),
        embedding_std=float(raw["embedding_std"]) if raw.get("embedding_std") is not None else None,
        circuits=CopyCircuits(**raw["circuits"]) if raw.get("circuits") is not None else None,
    )


def builtin_fingerprint(config: BuiltinConfig, roles: Sequence[str], texts: Iterable[str]) -> str:
    """Identity of a built base: its config, roles and training texts (the cache key)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([config.__dict__, list(roles)], sort_keys=True, default=lambda o: o.__dict__).encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def _initial_model(config: BuiltinConfig, tokenizer: Any) -> PreTrainedModel:
    llama = LlamaConfig(
        **{key: value for key, value in config.model.items() if key not in ("architectures", "model_type")},
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    devices = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(llama)
        if config.embedding_std is not None:
            # Frozen random embeddings (tied to the output layer) need a spread large enough for confident logits:
            # with the default 0.02 the largest reachable logit is about hidden_size * 0.02, too flat to learn on.
            with torch.no_grad():
                torch.nn.init.normal_(model.get_input_embeddings().weight, std=config.embedding_std)
        if config.circuits is not None:
            install_copy_circuits(model, config.circuits, bos_token_id=tokenizer.bos_token_id, seed=config.seed)
    finally:
        torch.random.set_rng_state(devices)
    return model.eval()


def build_builtin(
    name: str,
    *,
    texts: Iterable[str],
    roles: Sequence[str],
    cache_dir: str | Path,
) -> tuple[PreTrainedModel, Any]:
    """The built-in base `name` with a tokenizer trained on `texts`, from `cache_dir` when already built.

    `texts` is read twice (identity, then training) when it can be iterated again (a collection, or an object
    reading its texts from disk on each `iter`); a one-shot iterator is collected first."""
    config = builtin_config(name)
    corpus = list(texts) if isinstance(texts, Iterator) else texts
    if next(iter(corpus), None) is None:
        raise ValueError(
            f"base_model.builtin {name!r}: the tokenizer is trained on the job's training texts and none were given; "
            "pass texts=[render_text(t) for t in dataset.train]"
        )
    target = Path(cache_dir) / "builtin" / f"{name}-{builtin_fingerprint(config, roles, corpus)}"
    if not (target / _DONE).is_file():
        tokenizer = train_tokenizer(
            corpus, roles=roles, vocab_size=config.vocab_size, min_frequency=config.min_frequency
        )
        model = _initial_model(config, tokenizer)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / _DONE).write_text(json.dumps({"name": name, "roles": list(roles)}) + "\n")
            try:
                os.replace(staging, target)
            except OSError:  # another process built it first: keep theirs
                if not (target / _DONE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    return model.eval(), tokenizer
