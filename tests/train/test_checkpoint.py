from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mor.hashing import file_sha256
from mor.train.checkpoint import (
    CheckpointCorruptError,
    CheckpointUnsafeError,
    TrainState,
    read_checkpoint,
    write_checkpoint,
)


def _optimizer() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.nn.Linear]:
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    scheduler.step()
    return optimizer, scheduler, layer


def _write(directory: Path) -> TrainState:
    optimizer, scheduler, layer = _optimizer()
    state = TrainState(step=7, epoch=1, batch_in_epoch=3, tokens_seen=1234, train_seconds=12.5)

    def save_adapter(path: Path) -> None:
        path.mkdir()
        torch.save(layer.state_dict(), path / "weights.pt")

    write_checkpoint(directory, save_adapter=save_adapter, optimizer=optimizer, scheduler=scheduler, state=state)
    return state


def test_round_trip(tmp_path: Path) -> None:
    state = _write(tmp_path)
    adapter_dir, states, position = read_checkpoint(tmp_path)
    assert position == state
    assert (adapter_dir / "weights.pt").is_file()
    assert states["optimizer"]["state"][0]["step"] == 1
    assert states["scheduler"]["last_epoch"] == 1


def test_a_position_without_train_seconds_reads_as_zero(tmp_path: Path) -> None:
    """Checkpoints written before `train_seconds` was recorded still resume (their earlier time counts 0)."""
    _write(tmp_path)
    position = tmp_path / "position.json"
    fields = json.loads(position.read_text())
    del fields["train_seconds"]
    position.write_text(json.dumps(fields))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["position.json"] = file_sha256(position)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert read_checkpoint(tmp_path)[2] == TrainState(step=7, epoch=1, batch_in_epoch=3, tokens_seen=1234)


def test_corrupted_file_is_detected(tmp_path: Path) -> None:
    _write(tmp_path)
    weights = tmp_path / "adapter" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointCorruptError, match=r"adapter/weights\.pt does not match its checksum"):
        read_checkpoint(tmp_path)


def test_incomplete_checkpoint_is_detected(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "position.json").unlink()
    with pytest.raises(CheckpointCorruptError, match="position.json is missing"):
        read_checkpoint(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(CheckpointCorruptError, match="not completely written"):
        read_checkpoint(tmp_path)


def test_fp16_scaler_state_round_trips_and_disabled_scaler_is_not_saved(tmp_path: Path) -> None:
    optimizer, scheduler, layer = _optimizer()
    state = TrainState(step=3, epoch=0, batch_in_epoch=3, tokens_seen=10)

    def save_adapter(path: Path) -> None:
        path.mkdir()
        torch.save(layer.state_dict(), path / "weights.pt")

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    scaler.scale(torch.ones(()))  # the scale tensor is created on first use
    scaler.update(new_scale=96.0)
    write_checkpoint(
        tmp_path / "fp16",
        save_adapter=save_adapter,
        optimizer=optimizer,
        scheduler=scheduler,
        state=state,
        scaler=scaler,
    )
    _, states, _ = read_checkpoint(tmp_path / "fp16")
    restored = torch.amp.GradScaler("cpu")
    restored.load_state_dict(states["scaler"])
    assert restored.get_scale() == 96.0
    assert restored.get_growth_interval() == 7

    write_checkpoint(
        tmp_path / "bf16",
        save_adapter=save_adapter,
        optimizer=optimizer,
        scheduler=scheduler,
        state=state,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
    )
    _, states, _ = read_checkpoint(tmp_path / "bf16")
    assert "scaler" not in states


class _Payload:
    """What a crafted checkpoint could hold: unpickling it would create `marker` (any code could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    _write(checkpoint)
    marker = tmp_path / "ran"
    torch.save({"optimizer": _Payload(marker)}, checkpoint / "trainer_state.pt")
    # whoever can write the file can write its checksum too: the manifest says nothing about trust
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["trainer_state.pt"] = file_sha256(checkpoint / "trainer_state.pt")
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointUnsafeError, match=r"trainer_state\.pt: refused to load.*could run code"):
        read_checkpoint(checkpoint)
    assert not marker.exists()
