"""The comparison of variants over seeds: spreads, the reference rule and the tables (the store and MLflow side is
covered end to end in tests/train/test_adapters.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.evals.ablation import Spread, VariantRun, category_table, markdown_table, plot_summaries, summarize


def _run(variant: str, version: str | None, accuracy: float, **extra: float) -> VariantRun:
    summary = {"items": 100.0, "accuracy": accuracy, "call_accuracy": accuracy + 0.1, "accuracy/weather": accuracy}
    summary.update({f"failures/{role}": value for role, value in extra.items()})
    return VariantRun(
        variant=variant,
        version=version,
        eval_run_id=hash((variant, version)) % 1000,
        summary=summary,
        seed=int(version) - 1 if version else None,
        trainable_params=3.03e6 if variant == "mor" else 0.84e6,
        train_seconds=100.0 + (float(version) if version else 0.0),
    )


RUNS = [
    _run("untrained tiny-llama", None, 0.0, reasoner=100.0),
    _run("mor", "1", 0.30, executor=60.0),
    _run("mor", "2", 0.34, executor=56.0),
    _run("mor", "3", 0.32, executor=58.0, summarizer=2.0),
    _run("lora", "1", 0.40, executor=50.0),
    _run("lora", "2", 0.42, executor=48.0),
    _run("lora", "3", 0.44, executor=46.0),
    _run("near", "1", 0.31),
    _run("near", "2", 0.35),
    _run("single", "1", 0.9),
]


def test_spread_is_the_mean_and_sample_sd() -> None:
    spread = Spread.of([0.30, 0.34, 0.32])
    assert spread is not None and spread.n == 3
    assert spread.mean == pytest.approx(0.32) and spread.sd == pytest.approx(0.02)
    assert Spread.of([0.5]).sd is None and Spread.of([]) is None
    assert spread.beyond(Spread.of([0.40, 0.42, 0.44])) is True  # 0.10 apart, sds 0.02 + 0.02
    assert spread.beyond(Spread.of([0.31, 0.35])) is False
    assert spread.beyond(Spread.of([0.9])) is None


def test_each_variant_is_summarised_against_the_reference() -> None:
    summaries = {s.variant: s for s in summarize(RUNS, reference="mor")}
    mor, lora = summaries["mor"], summaries["lora"]
    assert mor.seeds == [0, 1, 2] and mor.delta is None
    assert mor.failures["executor"].mean == pytest.approx(58.0) and mor.failures["summarizer"].mean == pytest.approx(
        2.0 / 3
    ), "a run without a role's failures counts 0 for it"
    assert mor.train_seconds.mean == pytest.approx(102.0) and mor.trainable_params.sd == 0.0
    assert lora.delta == pytest.approx(0.10) and lora.beyond_spread is True
    assert summaries["near"].beyond_spread is False and summaries["single"].beyond_spread is None
    assert summaries["untrained tiny-llama"].delta == pytest.approx(-0.32)
    assert summaries["lora"].categories["weather"].mean == pytest.approx(0.42)


def test_the_tables_and_the_plot(tmp_path: Path) -> None:
    summaries = summarize(RUNS, reference="mor")
    table = markdown_table(summaries)
    assert table.splitlines()[0] == (
        "| variant | runs (seeds) | trainable params | train s | accuracy | call acc | answer acc | fail executor | "
        "fail reasoner | fail summarizer | vs reference |"
    )
    assert "| mor | 3 (0,1,2) | 3.03M | 102 ± 1 | 0.320 ± 0.020 | 0.420 ± 0.020 | — | 58.0 ± 2.0 | 0 |" in table
    assert "| lora | 3 (0,1,2) | 0.84M |" in table and "+0.100 (beyond spread)" in table
    assert "+0.010 (within spread)" in table and "+0.580 (n < 2)" in table and "| reference |" in table
    assert "| lora | 0.42 ± 0.02 |" in category_table(summaries)
    assert plot_summaries(summaries, tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
