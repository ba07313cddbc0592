"""benchmarks/ablation.py as a user runs it, with --dry-run (no job is submitted): the specs it would submit, the
variants applied to another base spec, and bad overrides refused before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _generated() -> set[Path]:
    return set(ROOT.joinpath("jobs").rglob(".ablation-*.yaml"))


def _dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    """The runner with --dry-run; asserts it left none of the specs it generated behind (another run's may be
    there: a real ablation running from this checkout)."""
    before = _generated()
    command = [sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "run", *args, "--dry-run"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert not _generated() - before, "the generated specs are removed"
    return done


def _specs(output: str) -> list[dict]:
    """The generated specs of a dry run (each printed after its `== …` line)."""
    blocks = output.split("\n== ")[1:] if not output.startswith("== ") else output.split("== ")[1:]
    return [yaml.safe_load(block.split("\n", 1)[1]) for block in blocks]


def test_every_variant_for_every_seed() -> None:
    done = _dry_run("--seeds", "0", "1")
    assert done.returncode == 0, done.stderr
    specs = _specs(done.stdout)
    variants = sorted(path.stem for path in ROOT.joinpath("jobs", "ablation").glob("[!.]*.yaml"))
    assert len(specs) == 2 * len(variants) and len(variants) >= 7
    names = {(spec["register"]["model_name"], spec["train"]["seed"]) for spec in specs}
    assert names == {(f"ablation-{variant}", seed) for variant in variants for seed in (0, 1)}


def test_variants_on_another_base_keep_its_training_and_data() -> None:
    done = _dry_run(
        "jobs/ablation/lora-r64.yaml",
        "jobs/ablation/no-routing.yaml",
        "--base",
        "jobs/paper-llama-3.2-1b.yaml",
        "--seeds",
        "2",
        "--set",
        "train.lr=2e-4",
    )
    assert done.returncode == 0, done.stderr
    lora, no_routing = _specs(done.stdout)
    paper = yaml.safe_load(ROOT.joinpath("jobs", "paper-llama-3.2-1b.yaml").read_text())
    assert lora["name"] == lora["register"]["model_name"] == "paper-llama-3-2-1b-lora-r64"
    assert no_routing["register"]["model_name"] == "paper-llama-3-2-1b-no-routing"
    assert lora["mor"]["adapter"] == "lora" and lora["mor"]["rank"] == 64
    assert no_routing["mor"]["roles"]["executor"]["routed"] == 0
    assert lora["data"] == paper["data"] and lora["base_model"] == paper["base_model"]
    assert lora["train"]["lr"] == 2e-4 and lora["train"]["seed"] == 2 and lora["train"]["workers"] == 4


def test_a_bad_override_is_refused_before_any_job() -> None:
    done = _dry_run("jobs/ablation/mor.yaml", "--seeds", "0", "--set", "train.lr=fast")
    assert done.returncode != 0 and "==" not in done.stdout
    assert "train.lr: got 'fast'" in done.stderr and "jobs/ablation/mor.yaml" in done.stderr
    not_train = _dry_run("jobs/ablation/mor.yaml", "--base", "jobs/README.md", "--seeds", "0")
    assert not_train.returncode != 0 and "--base: jobs/README.md" in not_train.stderr
