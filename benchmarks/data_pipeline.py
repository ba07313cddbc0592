"""Throughput of every training-data reader, and of the data stage and data job (records/s, peak memory).

    .venv/bin/python benchmarks/data_pipeline.py --quick     # 5 000 and 500 records: about 6 minutes on 2 busy cores
    .venv/bin/python benchmarks/data_pipeline.py             # 50 000 and 5 000 records: about 25 minutes
    .venv/bin/python benchmarks/data_pipeline.py --records 20000 --skip readers prepare complete

1. Readers: each format of `mor.data.readers.READERS` read over and over for at least `--read-seconds`.
   `sharegpt` and `toolbench` read the shared samples in ../shared/datasets; the other formats read a corpus written
   here (`benchmarks/formats.py`) from the sharegpt sample's 300 trajectories and 300 of `generate_synthetic`'s
   (which have thoughts), after checking it round-trips: no malformed record, the same calls per trajectory.
   `records`: records in one read of the corpus; `records/s`: records read (trajectories and malformed) per second;
   `malformed`: records in one read that the reader reported as malformed.
2. Data stage: a corpus of `--records` sharegpt records in 50 JSON-lines files (the glaive sample's conversations
   repeated, each copy's user messages numbered so deduplication keeps it), and one a tenth of its size, each run in
   a fresh process:
     prepare   `prepare_dataset` in process (read, deduplicate, verify, split, write);
     complete  the same with `complete: {parts: [thought]}` (the rule completer);
     job       `run_data_job` in process: rule completion, decontamination against BFCL simple_python (the
               benchmarks directory ../shared/benchmarks; not against the held-out set unless `--held-out`: the
               corpus repeats 300 conversations, so that check would drop most of the training part), rendering
               role samples (built-in tokenizer trained on the data, Parquet) and MLflow tracking (a SQLite store in
               a scratch MOR_HOME);
     ray       the same job on Ray Data, on a private 2-CPU Ray cluster started in the process.
   `s`: seconds of the stage or job call (Ray's start not included); `records/s`: corpus records / `s`; `train`,
   `test`: trajectories kept; `driver MB`: the process's peak RSS above its RSS just before the call (after imports
   and Ray's start); `workers MB`: the highest sum, sampled every 0.2 s, of the RSS of the Ray worker processes
   (processes named `ray::...` under the driver, Ray's dashboard and runtime-env agents left out; shared object-store
   pages count in each worker that touches them). A streaming stage keeps both about flat as the corpus grows tenfold.
   Job stages (seconds, from the job's progress reports): `prepare` (read to split), `decont`, `render` (tokenizer
   training, samples, publishing the data set), `mlflow` (tracking the run); `decont dropped`: training
   trajectories decontamination dropped; `samples`: role samples rendered (longer than 1024 tokens: dropped).

Timings are rough: other work shares the two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from formats import WRITERS, check_round_trip, write_corpus

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = {
    "sharegpt": SHARED / "datasets" / "glaive-function-calling-v2" / "glaive_toolcall_en_demo.json",
    "toolbench": SHARED / "datasets" / "toolbench" / "data_example" / "answer",
}
BENCHMARKS_DIR = SHARED / "benchmarks"
MODES = ("prepare", "complete", "job", "ray")
FILES = 50
_RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """Fixed-width columns: the first left-aligned, the others right-aligned."""
    cells = [headers] + [[f"{c:,.0f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    return "\n".join([title, *lines[:1], "  ".join("-" * w for w in widths), *lines[1:]])


# -- 1. readers -------------------------------------------------------------------------------------------------------


def _trajectories() -> list[Any]:
    """The sharegpt sample's trajectories and synthetic ones (which have thoughts), to write other formats from."""
    from mor.data import Trajectory, generate_synthetic
    from mor.data.readers import read

    sample = [t for t in read("sharegpt", SAMPLES["sharegpt"]) if isinstance(t, Trajectory)]
    synthetic = generate_synthetic(trajectories=300, seed=0)
    return sample + synthetic.train + synthetic.test


def _read_rate(name: str, path: Path, min_seconds: float) -> tuple[int, float, int]:
    """(records in one read, records/s over reads lasting at least `min_seconds`, malformed in one read)."""
    from mor.data.readers import Malformed, read

    records = malformed = rounds = 0
    start = time.perf_counter()
    while rounds == 0 or time.perf_counter() - start < min_seconds:
        out = list(read(name, path))
        records, malformed, rounds = len(out), sum(isinstance(r, Malformed) for r in out), rounds + 1
    return records, records * rounds / (time.perf_counter() - start), malformed


def _readers(scratch: Path, min_seconds: float) -> str:
    from mor.data.readers import READERS

    trajectories = _trajectories()
    rows = []
    for name in READERS:
        if name in SAMPLES:
            path, corpus = SAMPLES[name], "shared sample"
        elif name in WRITERS:
            path = scratch / f"{name}.jsonl"
            written = write_corpus(name, trajectories, path)
            check_round_trip(name, path, written)  # raises: the corpus would not measure the reader
            corpus = f"written, {len(written)} of {len(trajectories)}"
        else:
            raise SystemExit(f"format {name}: no shared sample and no writer; add one to benchmarks/formats.py")
        records, rate, malformed = _read_rate(name, path, min_seconds)
        rows.append([name, corpus, records, rate, malformed])
    return _table("Readers", ["format", "corpus", "records", "records/s", "malformed"], rows)


# -- 2. data stage: the parent --------------------------------------------------------------------------------------


def _corpus(directory: Path, records: int) -> None:
    """`records` sharegpt records in `FILES` JSON-lines files, the sample repeated with numbered user messages."""
    conversations = json.loads(SAMPLES["sharegpt"].read_text())
    directory.mkdir(parents=True)
    for part in range(FILES):
        with (directory / f"part-{part:02d}.jsonl").open("w", encoding="utf-8") as handle:
            for index in range(part * records // FILES, (part + 1) * records // FILES):
                record = json.loads(json.dumps(conversations[index % len(conversations)]))
                for turn in record["conversations"]:
                    if turn["from"] == "human":
                        turn["value"] = f"{turn['value']} (request {index})"
                handle.write(json.dumps(record) + "\n")


def _run_child(mode: str, corpus: Path, scratch: Path, held_out: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--corpus", str(corpus), "--scratch", str(scratch)]
    command += ["--held-out"] if held_out else []
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MOR_DATA_ENGINE")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{mode} on {corpus} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _stages(records: list[int], modes: list[str], scratch: Path, held_out: bool) -> str:
    rows, job_rows = [], []
    for count in records:
        corpus = scratch / f"corpus-{count}"
        _corpus(corpus, count)
        megabytes = sum(f.stat().st_size for f in corpus.iterdir()) / 2**20
        for mode in modes:
            out = _run_child(mode, corpus, scratch / f"{mode}-{count}", held_out)
            workers = f"{out['workers_mb']:.0f}" if "workers_mb" in out else "-"
            rows.append(
                [mode, count, f"{megabytes:.1f}", f"{out['seconds']:.1f}", count / out["seconds"]]
                + [out["train"], out["test"], f"{out['driver_mb']:.0f}", workers]
            )
            print(f"  {mode:<8} {count:>7} records: {out['seconds']:.1f} s", file=sys.stderr, flush=True)
            if "stages" in out:
                job_rows.append([mode, count, *(f"{out['stages'][s]:.1f}" for s in ("prepare", "decont", "render"))])
                job_rows[-1] += [f"{out['stages']['mlflow']:.1f}", out["decont_dropped"], out["samples"]]
        shutil.rmtree(corpus)
    headers = ["run", "records", "corpus MB", "s", "records/s", "train", "test", "driver MB", "workers MB"]
    text = _table("Data stage (a fresh process per run)", headers, rows)
    if job_rows:
        headers = ["run", "records", "prepare", "decont", "render", "mlflow", "decont dropped", "samples"]
        text += "\n\n" + _table("Data job stages (seconds)", headers, job_rows)
    return text


# -- 2. data stage: the child process ---------------------------------------------------------------------------------


class _WorkerMemory(threading.Thread):
    """The highest summed RSS of the Ray worker processes under this one, sampled every `interval` seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.wait(self.interval):
            total = 0
            for process in me.children(recursive=True):
                try:
                    title = process.cmdline()[0] if process.cmdline() else process.name()
                    if title.startswith("ray::") and not title.startswith(_RAY_AGENTS):
                        total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def _spec_text(mode: str, corpus: Path, held_out: bool) -> str:
    text = f"kind: data\nname: bench\ndata:\n  sources: [{{sharegpt: {{path: {corpus}}}}}]\n"
    if mode != "prepare":
        text += "  complete: {parts: [thought]}\n"
    if mode in ("job", "ray"):
        # The corpus repeats 300 conversations, so its training part copies its held-out part by construction:
        # checked against it (--held-out), most of the training part is dropped and rendering has little to do.
        held = "true" if held_out else "false"
        text += f"  decontaminate: {{bfcl: [simple_python], stabletoolbench: [], held_out: {held}}}\n"
    return text


def _start_ray(scratch: Path) -> Any:
    """A private, throwaway 2-CPU Ray cluster with token authentication on (Ray's default), its token a fresh file
    in the scratch directory, as tests/conftest.py gives its cluster; address="local" never joins another one."""
    from mor.cluster.auth import create_token_file

    create_token_file(scratch / "auth_token")
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(scratch / "auth_token")})
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return ray


def _child(mode: str, corpus: Path, scratch: Path, held_out: bool) -> dict[str, Any]:
    """Run one data stage or job over `corpus`; what it kept, how long it took, and its peak memory."""
    import psutil

    from mor.cluster import ProgressReporter
    from mor.data.engine import LocalEngine, ray_engine
    from mor.data.prepare import prepare_dataset
    from mor.pipeline.data_job import run_data_job
    from mor.settings import Settings
    from mor.spec import parse_spec

    class Marks(ProgressReporter):
        """When the job first reported each step (it reports 0 to 3: read..split, decontaminated, rendered); writes
        nothing (the job's per-1000-records report passes the pass's name as a metric, which ProgressReporter
        cannot write: it raises ValueError)."""

        def __init__(self) -> None:
            super().__init__()
            self.at: dict[int, float] = {}

        def report(self, stage: str, step: int, total: int | None = None, metrics: Any = None) -> None:
            self.at.setdefault(step, time.perf_counter())

    scratch.mkdir(parents=True)
    ray = _start_ray(scratch) if mode == "ray" else None
    spec = parse_spec(_spec_text(mode, corpus, held_out), source="bench.yaml")
    workers = _WorkerMemory()
    workers.start()
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    out: dict[str, Any] = {}
    if mode in ("prepare", "complete"):
        dataset = prepare_dataset(spec.data, scratch / "cache", engine=LocalEngine())
        sources = dataset.report["sources"]
        out["train"], out["test"] = (sum(s[part] for s in sources) for part in ("train", "test"))
    else:
        home = scratch / "home"
        settings = Settings(
            home=home, mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=BENCHMARKS_DIR
        )
        marks = Marks()
        summary = run_data_job(spec, settings, progress=marks, engine=LocalEngine() if ray is None else ray_engine())
        end = time.perf_counter()
        out.update(train=summary.train, test=summary.test, samples=summary.samples)
        manifest = json.loads((Path(summary.directory) / "manifest.json").read_text())
        out["decont_dropped"] = manifest["decontamination"]["dropped"]
        steps = [marks.at[0], marks.at[1], marks.at[2], marks.at[3], end]
        names = ("prepare", "decont", "render", "mlflow")
        out["stages"] = {name: steps[i + 1] - steps[i] for i, name in enumerate(names)}
    out["seconds"] = time.perf_counter() - start
    out["driver_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline) / 2**20
    peak = workers.stop()
    if ray is not None:
        out["workers_mb"] = peak / 2**20
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="records of the larger corpus (default 50 000)")
    parser.add_argument("--quick", action="store_true", help="5 000 and 500 records")
    parser.add_argument("--read-seconds", type=float, default=2.0, help="least time spent reading each format")
    parser.add_argument("--skip", nargs="*", default=[], choices=["readers", *MODES], help="parts not to run")
    parser.add_argument("--held-out", action="store_true", help="decontaminate against the held-out set too")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        print(json.dumps(_child(options.child, options.corpus, options.scratch, options.held_out)))
        return
    records = 5_000 if options.quick else options.records
    with tempfile.TemporaryDirectory(prefix="mor-data-bench-") as name:
        scratch = Path(name)
        if "readers" not in options.skip:
            print(_readers(scratch, options.read_seconds) + "\n", flush=True)
        modes = [mode for mode in MODES if mode not in options.skip]
        if modes:
            print(_stages([records // 10, records], modes, scratch, options.held_out), flush=True)


if __name__ == "__main__":
    main()
