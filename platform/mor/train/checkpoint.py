"""Training checkpoints: adapter weights, optimizer state and position, with a checksum manifest so a corrupted
checkpoint is detected instead of silently resumed.

Checkpoints live on storage other jobs and people can write (S3, NFS), and the manifest does not make them trusted:
whoever can write a file can write its checksum. So nothing is loaded in a way that runs code: the adapter is
safetensors plus JSON, the position JSON, and the optimizer/scheduler state is read with `weights_only=True`
(tensors and plain containers only); anything else is refused with `CheckpointUnsafeError`."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mor.hashing import file_sha256

__all__ = [
    "TrainState",
    "CheckpointCorruptError",
    "CheckpointUnsafeError",
    "write_checkpoint",
    "read_checkpoint",
    "MANIFEST",
]

MANIFEST = "manifest.json"
_STATE_FILE = "trainer_state.pt"
_POSITION_FILE = "position.json"
_ADAPTER_DIR = "adapter"


@dataclass
class TrainState:
    """Where training stands: optimizer step, epoch and batches done in that epoch, tokens seen, and the training
    loop's seconds spent on those steps over every attempt (0 in checkpoints written before it was recorded)."""

    step: int
    epoch: int
    batch_in_epoch: int
    tokens_seen: int
    train_seconds: float = 0.0


class CheckpointCorruptError(RuntimeError):
    """A checkpoint whose files do not match its manifest (truncated, edited or missing)."""


class CheckpointUnsafeError(CheckpointCorruptError):
    """A checkpoint file that would run code if loaded (a pickle holding more than tensors and plain data)."""


def write_checkpoint(
    directory: Path,
    *,
    save_adapter: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write a checkpoint into `directory`: `save_adapter(path)` writes the adapter, then state and manifest.

    An enabled fp16 gradient `scaler` is saved too (its loss scale), under the key "scaler".
    """
    directory.mkdir(parents=True, exist_ok=True)
    save_adapter(directory / _ADAPTER_DIR)
    states: dict[str, Any] = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
    }
    if scaler is not None and scaler.is_enabled():
        states["scaler"] = scaler.state_dict()
    torch.save(states, directory / _STATE_FILE)
    (directory / _POSITION_FILE).write_text(json.dumps(asdict(state)))
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(directory)): file_sha256(p) for p in files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def read_checkpoint(directory: Path) -> tuple[Path, dict[str, Any], TrainState]:
    """Verify a checkpoint against its manifest; return (adapter dir, optimizer/scheduler(/scaler) state, position)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointCorruptError(f"{directory}: no {MANIFEST}; the checkpoint was not completely written")
    manifest: dict[str, str] = json.loads(manifest_path.read_text())
    for name, expected in manifest.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointCorruptError(f"{directory}: {name} is missing")
        if file_sha256(path) != expected:
            raise CheckpointCorruptError(f"{directory}: {name} does not match its checksum (corrupted)")
    try:
        states = torch.load(directory / _STATE_FILE, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise CheckpointUnsafeError(
            f"{directory / _STATE_FILE}: refused to load, it holds objects other than tensors and plain data (a "
            f"crafted or foreign file; loading it could run code): {str(error).splitlines()[0][:200]}"
        ) from None
    position = TrainState(**json.loads((directory / _POSITION_FILE).read_text()))
    return directory / _ADAPTER_DIR, states, position
