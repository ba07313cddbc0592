"""A small trained MoR agent for the serve tests, written as an agent directory (the layout `mor serve` loads).

Recipe: the built-in tiny-llama base with its tokenizer trained on the data, MoR adapters (rank 8, 2 routed LoRAs
per role), single-call synthetic trajectories, a plain single-process loop of the MoR objective. To learn the
protocol within a minute or two of CPU the base weights train too (they are saved in the agent directory, as for
every builtin base); only adapters train in real jobs. The directory is cached under pytest's cache, keyed by the
recipe and the source of the packages it depends on, so it is trained once and rebuilt when either changes.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mor.base import build_builtin
from mor.data import DEFAULT_ROLES, SyntheticDataset, collate, fit_samples, generate_synthetic, render, render_text
from mor.model import MoRConfig, apply_mor, save_mor
from mor.registry import BaseModelRef, read_agent_dir, write_agent_dir
from mor.train import role_cross_entropy

__all__ = ["RECIPE", "agent_dataset", "trained_agent_dir"]

RECIPE = {
    "tools": 12,
    "trajectories": 300,
    "data_seed": 5,
    "test_fraction": 0.1,
    "category": "single",
    "rank": 8,
    "alpha": 16,
    "routed": 2,
    "top_k": 1,
    "steps": 200,
    "batch_size": 8,
    "lr": 3e-3,
    "seed": 0,
    "max_seq_len": 512,
    "torch_threads": 1,
}
_SOURCES = ("model", "data", "base", "registry/layout.py", "train/objective.py")


def agent_dataset() -> SyntheticDataset:
    """The data set the agent is trained on (its test split holds unseen single-call tasks)."""
    return generate_synthetic(
        tools=RECIPE["tools"],
        trajectories=RECIPE["trajectories"],
        seed=RECIPE["data_seed"],
        test_fraction=RECIPE["test_fraction"],
    )


def _fingerprint() -> str:
    import mor

    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    root = Path(mor.__file__).parent
    for source in _SOURCES:
        path = root / source
        files = [f for f in path.rglob("*") if f.suffix in (".py", ".json")] if path.is_dir() else [path]
        for file in sorted(files):  # the built-in base's JSON config counts as source too
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _train(dataset: SyntheticDataset, scratch: Path, destination: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(RECIPE["torch_threads"])  # small ops: one thread beats contended ones on a busy machine
    try:
        _train_steps(dataset, scratch, destination)
    finally:
        torch.set_num_threads(threads)


def _train_steps(dataset: SyntheticDataset, scratch: Path, destination: Path) -> None:
    random.seed(RECIPE["seed"])
    torch.manual_seed(RECIPE["seed"])
    roles = list(DEFAULT_ROLES)
    base, tokenizer = build_builtin(
        "tiny-llama", texts=[render_text(t) for t in dataset.train], roles=roles, cache_dir=scratch / "cache"
    )
    config = MoRConfig(
        rank=RECIPE["rank"],
        alpha=RECIPE["alpha"],
        roles={role: {"routed": RECIPE["routed"], "top_k": RECIPE["top_k"], "shared": True} for role in roles},
    )
    model = apply_mor(base, config)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    chosen = [t for t in dataset.train if t.metadata.category == RECIPE["category"]]
    encoded, _ = fit_samples((render(t, tokenizer, roles) for t in chosen), RECIPE["max_seq_len"])
    encoded.sort(key=len)
    size = RECIPE["batch_size"]
    batches = [encoded[i : i + size] for i in range(0, len(encoded), size)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], weight_decay=0.0)
    model.train()
    for _ in range(RECIPE["steps"]):
        batch = collate([sample.to_dict() for sample in random.choice(batches)], pad_token_id=tokenizer.pad_token_id)
        output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], role_ids=batch["role_ids"])
        ce, _, _ = role_cross_entropy(output.logits, batch["labels"], batch["role_ids"], roles)
        (ce + 0.01 * model.aux_loss()).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    adapters = {role: save_mor(model, scratch / "adapters" / role, roles=[role]) for role in roles}
    plain = AutoModelForCausalLM.from_config(model.base_model.config)
    state = {
        key.replace(".base_layer.", "."): value
        for key, value in model.base_model.state_dict().items()
        if "mor_roles" not in key
    }
    plain.load_state_dict(state, strict=True)
    write_agent_dir(
        destination,
        base=BaseModelRef("builtin", "tiny-llama"),
        adapters=adapters,
        tokenizer=tokenizer,
        spec_text=f"# serve-test agent\n{json.dumps(RECIPE)}\n",
        base_weights=plain,
        model_name="serve-test-agent",
    )


def trained_agent_dir(cache_root: Path) -> Path:
    """The trained agent's directory under `cache_root` (trained now unless a matching one is cached)."""
    destination = cache_root / f"agent-{_fingerprint()}"
    if (destination / "mor_agent.json").is_file():
        read_agent_dir(destination)
        return destination
    cache_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="train-", dir=cache_root))
    staging = cache_root / f".{destination.name}-{scratch.name}"
    try:
        _train(agent_dataset(), scratch, staging)
        staging.rename(destination)
        for stale in cache_root.glob("agent-*"):  # agents of older recipes or sources
            if stale != destination:
                shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return destination
