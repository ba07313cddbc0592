"""Throughput of the training-data readers and of the data stage (records/s), and the data stage's peak memory.

    .venv/bin/python benchmarks/data_pipeline.py                 # about a minute on 2 cores
    .venv/bin/python benchmarks/data_pipeline.py --records 50000

1. Each reader on the shared samples in ../shared/datasets (read several times over to time it), records/s.
2. The data stage (`mor.data.prepare.prepare_dataset`: read, drop records without agent turns, deduplicate,
   verify, split, write) on a synthesised corpus of `--records` sharegpt records (the glaive sample's 300
   conversations repeated, each copy's user messages numbered so deduplication keeps it), in a fresh process per
   run: records/s and peak RSS above the interpreter's, against a corpus a tenth the size (a streaming stage would
   stay flat; this one grows with the corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SAMPLES = {
    "sharegpt": DATASETS / "glaive-function-calling-v2" / "glaive_toolcall_en_demo.json",
    "toolbench": DATASETS / "toolbench" / "data_example" / "answer",
}


def _reader_rates(rounds: int) -> list[tuple[str, int, float]]:
    from mor.data.readers import read

    rows = []
    for name, path in SAMPLES.items():
        start = time.perf_counter()
        count = 0
        for _ in range(rounds):
            count += sum(1 for _ in read(name, path))
        rows.append((name, count // rounds, count / (time.perf_counter() - start)))
    return rows


def _corpus(path: Path, records: int) -> None:
    conversations = json.loads(SAMPLES["sharegpt"].read_text())
    with path.open("w") as handle:
        for index in range(records):
            record = json.loads(json.dumps(conversations[index % len(conversations)]))
            for turn in record["conversations"]:
                if turn["from"] == "human":
                    turn["value"] = f"{turn['value']} (request {index})"
            handle.write(json.dumps(record) + "\n")


def _stage_in_process(corpus: Path, cache: Path) -> None:
    """Run the data stage once and print `records, seconds, peak RSS MB` as JSON (in its own process)."""
    from mor.data.prepare import prepare_dataset
    from mor.spec import parse_spec

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = f"kind: data\nname: bench\ndata: {{sources: [{{sharegpt: {{path: {corpus}}}}}]}}\n"
    spec = parse_spec(text, source="bench.yaml")
    start = time.perf_counter()
    dataset = prepare_dataset(spec.data, cache)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kept": len(dataset.train) + len(dataset.test), "seconds": seconds, "peak_mb": peak - baseline}))


def _stage(records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mor-data-bench-") as scratch:
        corpus = Path(scratch) / "corpus.jsonl"
        _corpus(corpus, records)
        command = [sys.executable, __file__, "--stage-of", str(corpus), "--cache", str(Path(scratch) / "cache")]
        result = subprocess.run(command, capture_output=True, text=True, check=True, env=dict(os.environ))
        out = json.loads(result.stdout.strip().splitlines()[-1])
        out["records"] = records
        out["corpus_mb"] = corpus.stat().st_size / 2**20
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5, help="reads of each sample for the reader rates")
    parser.add_argument("--stage-of", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.stage_of is not None:
        _stage_in_process(options.stage_of, options.cache)
        return
    print(f"{'reader':<12}{'records':>9}{'records/s':>12}")
    for name, count, rate in _reader_rates(options.rounds):
        print(f"{name:<12}{count:>9}{rate:>12.0f}")
    print(f"\n{'data stage':<12}{'records':>9}{'corpus MB':>11}{'kept':>8}{'records/s':>12}{'peak MB':>9}")
    for records in (options.records // 10, options.records):
        row = _stage(records)
        print(
            f"{'sharegpt':<12}{records:>9}{row['corpus_mb']:>11.1f}{row['kept']:>8}"
            f"{records / row['seconds']:>12.0f}{row['peak_mb']:>9.0f}"
        )


if __name__ == "__main__":
    main()
