"""Step time and peak memory of MoR layers against PEFT LoRA and the dense reference-style math (CPU).

    .venv/bin/python benchmarks/mor_layer.py            # the issue's setting; about 3-4 minutes on 2 cores
    python benchmarks/mor_layer.py --device cuda --dtype bf16 --shape llama-3.2-1b --no-memory   # on a GPU

A Llama built from `transformers.LlamaConfig` with random weights (hidden 1024, intermediate 2816, 4 layers,
16 heads, vocab 4096 so the LM head stays small), batch 2 x seq 512, role ids in random contiguous spans. One
forward+backward training step (cross-entropy; MoR variants add 0.01 * the load-balancing loss) for:

  base      the frozen base alone (activation gradients only)
  lora16    PEFT LoRA r=16 on the 7 projections
  lora64    PEFT LoRA r=64 (the active rank of shared + top-3 routed at r=16)
  dense     the MoR math computed reference-style: every role's LoRAs for every token, then masked
  mor       the MoR layer of `mor.model` as it runs by default on the device ("auto")
  mor_fused   the fused implementation (all roles in one matmul pair; the GPU default)
  mor_grouped the role-grouped implementation (the CPU default)
  mor_orth  the same plus 0.001 * the orthogonality loss (a parameter-only term; shows its own cost)

Step times (wall clock, and CPU time of the process) are medians of interleaved repeats in one process; peak memory
is measured in a fresh process per variant (peak RSS, and the step's peak above the RSS of the built model, via
/proc's resettable high-water mark).

OpenMP threads wait passively unless OMP_WAIT_POLICY is set: on a small machine shared with other work, spinning
threads turn every small operator after a matmul into a multi-millisecond stall, which punishes whichever variant
runs more operators. Set OMP_WAIT_POLICY=ACTIVE to measure the default behaviour.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see the module docstring

import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.model import MoRConfig, apply_mor

VARIANTS = ("base", "lora16", "lora64", "dense", "mor", "mor_fused", "mor_grouped", "mor_orth")
#: --shape presets: (hidden, intermediate, layers, heads, kv heads, vocab, batch, seq)
SHAPES = {
    "small": (1024, 2816, 4, 16, 16, 4096, 2, 512),
    "llama-3.2-1b": (2048, 8192, 16, 32, 8, 128256, 4, 1024),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Setting:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    batch: int
    seq: int
    seed: int
    kv_heads: int = 0  # 0: as many as heads
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def _base(setting: Setting) -> LlamaForCausalLM:
    torch.manual_seed(setting.seed)
    config = LlamaConfig(
        hidden_size=setting.hidden,
        intermediate_size=setting.intermediate,
        num_hidden_layers=setting.layers,
        num_attention_heads=setting.heads,
        num_key_value_heads=setting.kv_heads or setting.heads,
        vocab_size=setting.vocab,
        max_position_embeddings=max(2048, setting.seq),
    )
    return LlamaForCausalLM(config).to(device=setting.device, dtype=setting.torch_dtype).train()


def _inputs(setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and role ids in contiguous spans (reasoner -> executor -> reasoner -> ... -> summarizer)."""
    generator = torch.Generator().manual_seed(setting.seed)
    input_ids = torch.randint(0, setting.vocab, (setting.batch, setting.seq), generator=generator)
    role_ids = torch.empty(setting.batch, setting.seq, dtype=torch.long)
    for row in range(setting.batch):
        spans = int(torch.randint(3, 9, (1,), generator=generator))
        cuts = sorted(torch.randperm(setting.seq - 1, generator=generator)[: spans - 1].add(1).tolist())
        bounds = [0, *cuts, setting.seq]
        for span, (start, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
            role = 2 if span == len(bounds) - 2 else span % 2
            role_ids[row, start:stop] = role
    return input_ids, role_ids


def _build(variant: str, setting: Setting) -> Callable[[], None]:
    """The variant's model and a function running one training step on it."""
    input_ids, role_ids = (tensor.to(setting.device) for tensor in _inputs(setting))
    base = _base(setting)
    if variant == "base":
        base.requires_grad_(False)
        base.enable_input_require_grads()

        def step() -> None:
            base(input_ids=input_ids, labels=input_ids).loss.backward()

        return step
    if variant.startswith("lora"):
        from peft import LoraConfig, get_peft_model

        rank = int(variant.removeprefix("lora"))
        peft_model = get_peft_model(
            base,
            LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=TARGETS),
            autocast_adapter_dtype=False,
        )  # adapters in the base dtype, as MoR's

        def step() -> None:
            peft_model.zero_grad(set_to_none=True)
            peft_model(input_ids=input_ids, labels=input_ids).loss.backward()

        return step
    mor_model = apply_mor(base, MoRConfig(), adapter_dtype=setting.torch_dtype)
    mor_model.set_impl({"dense": "dense", "mor_fused": "fused", "mor_grouped": "grouped"}.get(variant, "auto"))
    with_orth = variant == "mor_orth"

    def step() -> None:
        mor_model.zero_grad(set_to_none=True)
        out = mor_model(input_ids=input_ids, labels=input_ids, role_ids=role_ids)
        loss = out.loss + 0.01 * mor_model.aux_loss()
        if with_orth:
            loss = loss + 0.001 * mor_model.orth_loss()
        loss.backward()

    return step


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _measure_memory(variant: str, setting: Setting) -> dict[str, float]:
    step = _build(variant, setting)
    if setting.device == "cuda":  # allocator peak above what the built model holds
        torch.cuda.synchronize()
        model_mb = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        return {"model_mb": model_mb, "peak_mb": peak_mb, "step_mb": peak_mb - model_mb}
    model_rss = _rss_mb("VmRSS")
    try:  # reset the peak-RSS high-water mark so model construction does not count
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    step()
    peak = max(_rss_mb("VmHWM"), 0.0)
    if peak != peak:  # no /proc: fall back to the lifetime peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model_mb": model_rss, "peak_mb": peak, "step_mb": peak - model_rss}


def _memory_in_subprocess(variant: str, argv: list[str]) -> dict[str, float]:
    command = [sys.executable, os.path.abspath(__file__), *argv, "--memory-of", variant]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _synchronize(setting: Setting) -> None:
    if setting.device == "cuda":
        torch.cuda.synchronize()


def _operator_table(setting: Setting, variants: list[str]) -> str:
    """aten operator calls and syncing operators per adapted module per training step, over the frozen base."""
    from mor.model.profiling import count_operators

    modules = setting.layers * len(TARGETS)
    base = count_operators(_build("base", setting))
    counts = {variant: count_operators(_build(variant, setting)) for variant in variants if variant != "base"}
    lora = counts["lora64"].minus(base).total / modules if "lora64" in counts else float("nan")
    lines = [f"{'variant':<12} {'ops/module':>11} {'x lora64':>9} {'syncing ops/step':>17}", "-" * 52]
    for variant, count in counts.items():
        per_module = count.minus(base).total / modules
        lines.append(f"{variant:<12} {per_module:11.1f} {per_module / lora:9.2f} {count.syncs:17d}")
    return "\n".join(lines)


def _time_interleaved(
    setting: Setting, variants: list[str], repeats: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process-CPU seconds per step, per variant (CPU time is less sensitive to a busy machine)."""
    steps = {variant: _build(variant, setting) for variant in variants}
    wall: dict[str, list[float]] = {variant: [] for variant in variants}
    cpu: dict[str, list[float]] = {variant: [] for variant in variants}
    for repeat in range(warmup + repeats):
        for variant in variants:
            _synchronize(setting)
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[variant]()
            _synchronize(setting)
            if repeat >= warmup:
                wall[variant].append(time.perf_counter() - start)
                cpu[variant].append(time.process_time() - start_cpu)
        print(f"  round {repeat + 1}/{warmup + repeats}" + (" (warm-up)" if repeat < warmup else ""), file=sys.stderr)
    return wall, cpu


def _table(
    times: dict[str, list[float]], cpu_times: dict[str, list[float]], memory: dict[str, dict[str, float]]
) -> str:
    median = {variant: statistics.median(values) for variant, values in times.items()}
    cpu = {variant: statistics.median(values) for variant, values in cpu_times.items()}
    header = (
        f"{'variant':<11} {'step s':>8} {'x base':>7} {'x lora64':>9} {'x dense':>8} {'cpu s':>7} {'cpu x lora64':>13} "
        f"{'peak MB':>8} {'step MB':>8} {'step MB x lora64':>17}"
    )
    lines = [header, "-" * len(header)]
    for variant, value in median.items():
        mem = memory.get(variant, {})
        lora_mem = memory.get("lora64", {}).get("step_mb")
        step_ratio = f"{mem['step_mb'] / lora_mem:.2f}" if mem and lora_mem else "-"
        lines.append(
            f"{variant:<11} {value:8.3f} {value / median.get('base', float('nan')):7.2f} "
            f"{value / median.get('lora64', float('nan')):9.2f} {value / median.get('dense', float('nan')):8.2f} "
            f"{cpu[variant]:7.2f} {cpu[variant] / cpu.get('lora64', float('nan')):13.2f} "
            f"{mem.get('peak_mb', float('nan')):8.0f} {mem.get('step_mb', float('nan')):8.0f} {step_ratio:>17}"
        )
    if {"mor", "lora64", "dense", "base"} <= median.keys():
        overhead = {variant: median[variant] - median["base"] for variant in median}
        lines.append("")
        lines.append(
            "adapter overhead over the frozen base (step - base): "
            + ", ".join(f"{variant} {overhead[variant]:.3f} s" for variant in median if variant != "base")
            + f"; dense / mor overhead: {overhead['dense'] / overhead['mor']:.2f}x"
            if overhead["mor"] > 0
            else ""
        )
        lines.append(
            f"targets: mor <= 1.2x lora64 step: {median['mor'] / median['lora64']:.2f}x; "
            f"mor >= 4x faster than dense: {median['dense'] / median['mor']:.2f}x"
            + (
                f"; mor step memory <= 1.15x lora64: {memory['mor']['step_mb'] / memory['lora64']['step_mb']:.2f}x"
                if "mor" in memory and "lora64" in memory
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="small",
        help="model and batch preset (llama-3.2-1b: the issue's GPU setting, batch 4 x 1024)",
    )
    for name in ("hidden", "intermediate", "layers", "heads", "kv-heads", "vocab", "batch", "seq"):
        parser.add_argument(f"--{name}", type=int, default=None, help="override the preset")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "bf16"], default="float32")
    parser.add_argument("--no-ops", action="store_true", help="skip the operator-count table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (each runs every variant once)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant memory processes")
    parser.add_argument("--memory-of", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    preset = dict(
        zip(
            ("hidden", "intermediate", "layers", "heads", "kv_heads", "vocab", "batch", "seq"),
            SHAPES[args.shape],
            strict=False,
        )
    )
    shape = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in preset.items()}
    dtype = "bfloat16" if args.dtype == "bf16" else args.dtype
    setting = Setting(
        shape["hidden"],
        shape["intermediate"],
        shape["layers"],
        shape["heads"],
        shape["vocab"],
        shape["batch"],
        shape["seq"],
        args.seed,
        kv_heads=shape["kv_heads"],
        device=args.device,
        dtype=dtype,
    )
    shape_argv = [f"--{key.replace('_', '-')}={value}" for key, value in shape.items()]
    shape_argv += [f"--seed={args.seed}", f"--device={args.device}", f"--dtype={dtype}"]
    if args.memory_of:
        print(json.dumps(_measure_memory(args.memory_of, setting)))
        return
    variants = [variant for variant in args.variants.split(",") if variant]
    started = time.perf_counter()
    where = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else (
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
        )
    )
    print(
        f"MoR layer benchmark: Llama hidden {setting.hidden}, intermediate {setting.intermediate}, {setting.layers} "
        f"layers, vocab {setting.vocab}, batch {setting.batch} x seq {setting.seq}, {dtype} on {args.device}; "
        f"torch {torch.__version__}, {where}"
    )
    times, cpu_times = _time_interleaved(setting, variants, args.repeats, args.warmup)
    measured = [variant for variant in variants if variant != "mor_orth"]  # orth is parameter-only: same memory
    memory = {} if args.no_memory else {variant: _memory_in_subprocess(variant, shape_argv) for variant in measured}
    print(_table(times, cpu_times, memory))
    if not args.no_ops:
        print()
        print(_operator_table(setting, [variant for variant in variants if variant != "mor_orth"]))
    print(f"(medians of {args.repeats} interleaved rounds; total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
