"""Serving speed of the MoR agent: decode tokens/s against the bare base model and PEFT LoRA r=64, time to first
token, operators per decoding step, and conversation throughput with 1, 8 and 32 concurrent clients with and
without cross-role batching.

    .venv/bin/python benchmarks/serve.py                       # about 10 minutes on 2 busy cores
    .venv/bin/python benchmarks/serve.py --agent DIR_OR_URI    # throughput of a trained agent instead
    .venv/bin/python benchmarks/serve.py --device cuda --dtype bf16 --large --skip-throughput   # on a GPU

1. Decode: greedy, one row and eight rows, a 300-token prompt, 64 new tokens, through the serving engine
   (`mor.serve.BatchEngine`, KV cache, no constraint), for the bare base, PEFT LoRA r=64 and the same base with MoR
   adapters
   (the paper's setting: rank 16, 7 projections, shared + 4/4/3 routed LoRAs, top-3/3/2). Two bases, random
   weights: the quickstart's tiny-llama (hidden 160, 4 layers: per-operator overhead dominates) and a small Llama
   (hidden 1024, 8 layers, ~100M parameters: matmuls dominate). Median of interleaved repeats.
2. Time to first token: the same engine, prompt of 300 tokens, one request at a time (prefill + first token).
3. Throughput: the role-gated runtime in process (the code behind the HTTP route, no network), N clients each
   running multi-turn tool-use conversations on synthetic tasks (request with tools → run the returned calls →
   send results → answer). Batching modes: cross-role (rows of all roles share a forward), same-role (one role per
   forward, roles take turns), off (one sequence at a time). Reported: conversations/s, generated tokens/s,
   mean request latency, mean time to the first token of a request, rows per decoding forward, share of forwards
   that mixed roles.

Results go to stdout as tables (and to --json if given).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads stall small operators on busy cores

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.base import build_builtin, builtin_config
from mor.data import DEFAULT_ROLES, SyntheticDataset, generate_synthetic, render_text
from mor.model import MoRConfig, MoRModel, apply_mor
from mor.serve import BatchEngine, GenerationJob, ServeArgs, build_runtime, digest_key
from mor.serve.protocol import parse_chat_request
from mor.serve.runtime import AgentRuntime

PAPER = MoRConfig(
    rank=16,
    roles={
        "reasoner": {"routed": 4, "top_k": 3, "shared": True},
        "executor": {"routed": 4, "top_k": 3, "shared": True},
        "summarizer": {"routed": 3, "top_k": 2, "shared": True},
    },
)


def _randomize_adapters(model: MoRModel, seed: int) -> MoRModel:
    """Non-zero adapters (a trained model's up projections are not zero; zero ones would skip nothing anyway)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "mor_roles" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return model.eval()


def _bases(large: bool) -> dict[str, LlamaConfig]:
    tiny = builtin_config("tiny-llama").model
    tiny = {k: v for k, v in tiny.items() if k not in ("architectures", "model_type")}
    bases = {
        "tiny-llama": LlamaConfig(**tiny, vocab_size=1024),
        "llama-100m": LlamaConfig(
            hidden_size=1024,
            intermediate_size=2816,
            num_hidden_layers=8,
            num_attention_heads=16,
            num_key_value_heads=16,
            vocab_size=4096,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        ),
    }
    if large:  # the shape of Llama-3.2-1B (vocabulary cut to 4096): 5 GB in float32, minutes per run on a CPU
        bases["llama-1b-shape"] = LlamaConfig(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=4096,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        )
    return bases


def _engine_decode(model: Any, role_aware: bool, rows: int, prompt: int, new: int, seed: int) -> tuple[float, float]:
    """(decode tokens/s, seconds to the first token of one row) through the engine."""
    generator = torch.Generator().manual_seed(seed)
    jobs = []
    for row in range(rows):
        ids = torch.randint(10, 1000, (prompt,), generator=generator).tolist()
        jobs.append(GenerationJob(ids, [row % 3] * prompt, row % 3, new, []))
    with BatchEngine(model, role_aware=role_aware, pad_token_id=0, max_batch_size=max(rows, 1)) as engine:
        started = time.perf_counter()
        futures = [engine.submit(job) for job in jobs]
        results = [future.result() for future in futures]
        total = time.perf_counter() - started
    first = max(result.first_token_s for result in results)
    return rows * (new - 1) / max(total - first, 1e-9), min(result.first_token_s for result in results)


@dataclass
class DecodeRow:
    base: str
    rows: int
    base_tps: float
    mor_tps: float
    lora_tps: float
    base_ttft_ms: float
    mor_ttft_ms: float
    bound: float

    @property
    def ratio(self) -> float:
        return self.mor_tps / self.base_tps


def weight_read_bound(mor: MoRModel) -> float:
    """MoR/base decode speed if a decoding step took only the time to read the weights it uses.

    One step reads every linear weight of the base once (the embedding only one row), and each MoR layer adds
    its active role's fused `down` and `up` (mean over roles). Decoding a few rows on a CPU is close to that
    regime for models of some size; at tiny sizes fixed per-step overheads matter too.
    """
    base = sum(module.weight.numel() for module in mor.base_model.modules() if isinstance(module, torch.nn.Linear))
    adapters = 0.0
    for _, layer in mor.mor_layers():
        roles = layer.role_weights
        adapters += sum(role.down.numel() + role.up.numel() for role in roles) / len(roles)
    return base / (base + adapters)


def _lora64(model: torch.nn.Module) -> torch.nn.Module:
    """PEFT LoRA r=64 on the same projections as MoR (random B, so the adapter is not skipped)."""
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=64, lora_alpha=64, target_modules=list(PAPER.target_modules)))
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.02)
    return lora.eval()


def _sequential(config: LlamaConfig, rows: int, seed: int, new: int, where: Placement) -> DecodeRow:
    """The base, LoRA, then MoR applied to it in place (no second copy of a large model in memory)."""
    torch.manual_seed(seed)
    plain = where.put(LlamaForCausalLM(config).eval())
    base_run = _engine_decode(plain, False, rows, 300, new, seed)
    lora = _lora64(plain)
    lora_run = _engine_decode(lora, False, rows, 300, new, seed)
    plain = lora.unload()
    mor = _randomize_adapters(where.put(apply_mor(plain, PAPER, adapter_dtype=where.dtype)), seed)
    mor_run = _engine_decode(mor, True, rows, 300, new, seed)
    return DecodeRow(
        base="llama-1b-shape",
        rows=rows,
        base_tps=base_run[0],
        mor_tps=mor_run[0],
        lora_tps=lora_run[0],
        base_ttft_ms=1000 * base_run[1],
        mor_ttft_ms=1000 * mor_run[1],
        bound=weight_read_bound(mor),
    )


@dataclass(frozen=True)
class Placement:
    """Where the decode benchmark runs: device and dtype of base and adapters."""

    device: str
    dtype: torch.dtype

    def put(self, model: Any) -> Any:
        return model.to(device=self.device, dtype=self.dtype)


def bench_decode(repeats: int, seed: int, large: bool, where: Placement) -> list[DecodeRow]:
    """Section 1 and 2."""
    out = []
    for name, config in _bases(large).items():
        if name == "llama-1b-shape":
            out.append(_sequential(config, 1, seed, 32, where))
            continue
        torch.manual_seed(seed)
        plain = where.put(LlamaForCausalLM(config).eval())
        lora = _lora64(copy.deepcopy(plain))
        mor = _randomize_adapters(where.put(apply_mor(copy.deepcopy(plain), PAPER, adapter_dtype=where.dtype)), seed)
        for rows in (1, 8):
            runs: dict[str, list[tuple[float, float]]] = {"base": [], "lora": [], "mor": []}
            for _ in range(repeats):  # interleaved, so drifting machine load hits all alike
                runs["base"].append(_engine_decode(plain, False, rows, 300, 64, seed))
                runs["lora"].append(_engine_decode(lora, False, rows, 300, 64, seed))
                runs["mor"].append(_engine_decode(mor, True, rows, 300, 64, seed))
            tps = {key: statistics.median(r[0] for r in value) for key, value in runs.items()}
            ttft = {key: 1000 * statistics.median(r[1] for r in value) for key, value in runs.items()}
            out.append(
                DecodeRow(
                    base=name,
                    rows=rows,
                    base_tps=tps["base"],
                    mor_tps=tps["mor"],
                    lora_tps=tps["lora"],
                    base_ttft_ms=ttft["base"],
                    mor_ttft_ms=ttft["mor"],
                    bound=weight_read_bound(mor),
                )
            )
    return out


def decode_operator_table(where: Placement) -> str:
    """aten operators and syncing operators of one cached decoding step (one row), per adapted module, over the
    bare base: LoRA r=64 and MoR on the tiny-llama shape."""
    from transformers import DynamicCache

    from mor.model.cache import cache_argument_name
    from mor.model.profiling import count_operators

    config = _bases(False)["tiny-llama"]
    torch.manual_seed(0)
    plain = where.put(LlamaForCausalLM(config).eval())
    models = {
        "base": plain,
        "lora64": _lora64(copy.deepcopy(plain)),
        "mor": _randomize_adapters(where.put(apply_mor(copy.deepcopy(plain), PAPER, adapter_dtype=where.dtype)), 0),
    }
    prompt = torch.randint(10, 1000, (1, 32), device=where.device)
    token = torch.tensor([[7]], device=where.device)

    def decode_step(model: Any, role: bool) -> Any:
        roles = {"role_ids": torch.ones(1, 1, dtype=torch.long, device=where.device)} if role else {}
        name = cache_argument_name(model)
        cache = DynamicCache()
        with torch.no_grad():
            model(
                input_ids=prompt,
                use_cache=True,
                **{name: cache},
                **({"role_ids": roles["role_ids"].expand(1, 32)} if role else {}),
            )
        snapshot = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]

        def step() -> None:
            for layer, (keys, values) in zip(
                cache.layers, snapshot, strict=False
            ):  # decode from the same prefix every time
                layer.keys, layer.values = keys.clone(), values.clone()
            with torch.no_grad():
                model(input_ids=token, use_cache=True, **{name: cache}, **roles)

        return step

    counts = {key: count_operators(decode_step(model, key == "mor")) for key, model in models.items()}
    modules = config.num_hidden_layers * len(PAPER.target_modules)
    lines = [f"{'variant':<8}{'ops/module':>11}{'x lora64':>9}{'syncing ops/step':>18}", "-" * 46]
    lora = counts["lora64"].minus(counts["base"]).total / modules
    for key in ("lora64", "mor"):
        per_module = counts[key].minus(counts["base"]).total / modules
        lines.append(f"{key:<8}{per_module:>11.1f}{per_module / lora:>9.2f}{counts[key].syncs:>18d}")
    return "\n".join(lines)


def _tiny_agent(dataset: SyntheticDataset, seed: int, cache: Path) -> tuple[MoRModel, Any]:
    base, tokenizer = build_builtin(
        "tiny-llama", texts=[render_text(t) for t in dataset.train], roles=DEFAULT_ROLES, cache_dir=cache
    )
    torch.manual_seed(seed)
    return _randomize_adapters(apply_mor(base, PAPER), seed), tokenizer


async def _conversation(
    runtime: AgentRuntime, task: Any, dataset: SyntheticDataset, latencies: list[float], ttfts: list[float]
) -> int:
    """One multi-turn conversation; returns the number of requests it took."""
    tools = [tool.to_openai() for tool in task.tools]
    messages: list[dict[str, Any]] = [{"role": "user", "content": task.query}]
    box = dataset.toolbox()
    for turn in range(4):
        body = {"model": runtime.model_name, "messages": messages, "tools": tools}
        started = time.perf_counter()
        plan = runtime.prepare(parse_chat_request(json.dumps(body).encode()))
        decision = await runtime.decide(plan)
        if decision.kind == "tool_calls":
            latencies.append(time.perf_counter() - started)
            if decision.first_token_s is not None:
                ttfts.append(decision.first_token_s)
            messages.append(
                {
                    "role": "assistant",
                    "content": decision.thought,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                        }
                        for call in decision.calls
                    ],
                }
            )
            for call in decision.calls:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": json.dumps(box.execute(call.name, call.arguments)),
                    }
                )
            continue
        if decision.kind == "answer":
            await runtime.answer(plan, decision)
        latencies.append(time.perf_counter() - started)
        if decision.first_token_s is not None:
            ttfts.append(decision.first_token_s)
        return turn + 1
    return 4


@dataclass
class ThroughputRow:
    mode: str
    clients: int
    conversations: int
    requests: int
    seconds: float
    tokens: int
    latency_s: float
    ttft_s: float
    rows_per_forward: float
    mixed_share: float


def bench_throughput(
    model: MoRModel,
    tokenizer: Any,
    dataset: SyntheticDataset,
    clients_list: list[int],
    modes: list[str],
    per_client: int,
) -> list[ThroughputRow]:
    """Section 3."""
    tasks = [t for t in dataset.test if t.metadata.category in ("single", "multi")]  # one or two calls each
    out = []
    for clients in clients_list:
        for mode in modes:
            args = ServeArgs(
                model_uri="bench",
                api_key_digests=[digest_key("bench-key-123")],
                batching=mode,
                max_batch_size=64,
                role_max_tokens={"reasoner": 32, "executor": 64, "summarizer": 32},
                max_steps=3,
            )
            runtime = build_runtime(model, tokenizer, args, name="bench")
            latencies: list[float] = []
            ttfts: list[float] = []

            async def everyone(
                runtime: AgentRuntime = runtime,
                clients: int = clients,
                latencies: list[float] = latencies,
                ttfts: list[float] = ttfts,
            ) -> list[int]:
                async def client(index: int) -> int:
                    total = 0
                    for k in range(per_client):
                        task = tasks[(index * per_client + k) % len(tasks)]
                        total += await _conversation(runtime, task, dataset, latencies, ttfts)
                    return total

                return await asyncio.gather(*(client(i) for i in range(clients)))

            started = time.perf_counter()
            requests = sum(asyncio.run(everyone()))
            seconds = time.perf_counter() - started
            stats = runtime.engine.stats
            runtime.engine.close()
            out.append(
                ThroughputRow(
                    mode=mode,
                    clients=clients,
                    conversations=clients * per_client,
                    requests=requests,
                    seconds=seconds,
                    tokens=stats.generated_tokens,
                    latency_s=statistics.mean(latencies),
                    ttft_s=statistics.mean(ttfts),
                    rows_per_forward=stats.mean_rows_per_decode,
                    mixed_share=stats.mixed_role_forwards / stats.decode_forwards if stats.decode_forwards else 0.0,
                )
            )
            print(f"  {mode:>10} x {clients:>2} clients: {out[-1].conversations / seconds:.2f} conv/s", flush=True)
    return out


def _print_decode(rows: list[DecodeRow]) -> None:
    print("\nDecode tokens/s through the serving engine (greedy, 300-token prompt, 64 new tokens, median)")
    print(
        "bound: MoR/base if a step were all weight reads, base bytes / (base + active adapter bytes); overheads "
        "both share lift the real ratio above it, the MoR layers' operator launches pull it below"
    )
    print(
        f"{'base':<15}{'rows':>5}{'bare base':>12}{'LoRA r=64':>11}{'MoR agent':>12}{'LoRA/base':>10}"
        f"{'MoR/base':>10}{'bound':>7}{'TTFT base':>12}{'TTFT MoR':>11}"
    )
    for row in rows:
        print(
            f"{row.base:<15}{row.rows:>5}{row.base_tps:>12.1f}{row.lora_tps:>11.1f}{row.mor_tps:>12.1f}"
            f"{row.lora_tps / row.base_tps:>10.2f}{row.ratio:>10.2f}"
            f"{row.bound:>7.2f}{row.base_ttft_ms:>10.1f}ms{row.mor_ttft_ms:>9.1f}ms"
        )


def _print_throughput(rows: list[ThroughputRow]) -> None:
    print("\nConversation throughput of the role-gated runtime (tool-use conversations, in process)")
    print(
        f"{'clients':>7}{'batching':>12}{'conv/s':>8}{'req/s':>8}{'tok/s':>8}{'latency':>9}{'TTFT':>8}"
        f"{'rows/fwd':>9}{'mixed':>7}"
    )
    for row in rows:
        print(
            f"{row.clients:>7}{row.mode:>12}{row.conversations / row.seconds:>8.2f}"
            f"{row.requests / row.seconds:>8.2f}{row.tokens / row.seconds:>8.0f}{row.latency_s:>8.2f}s"
            f"{row.ttft_s * 1000:>6.0f}ms{row.rows_per_forward:>9.1f}{row.mixed_share:>7.0%}"
        )


def _cached_test_agent() -> str | None:
    """The newest agent the serve tests trained and cached, if any."""
    root = Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "mor-serve"
    found = sorted(root.glob("agent-*/mor_agent.json"), key=lambda path: path.stat().st_mtime)
    return str(found[-1].parent) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--agent",
        default=None,
        help="agent directory or models:/ URI for the throughput part; default the small trained "
        "agent the serve tests cache under .pytest_cache, else a tiny-llama with random adapters",
    )
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--modes", default="cross-role,same-role,off")
    parser.add_argument("--per-client", type=int, default=2, help="conversations per client")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--large", action="store_true", help="also decode with a Llama-3.2-1B-shaped base (slow)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="decode section only")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "bf16"],
        default="float32",
        help="decode section only (base and adapters)",
    )
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    where = Placement(options.device, torch.float32 if options.dtype == "float32" else torch.bfloat16)
    results: dict[str, Any] = {}
    if not options.skip_decode:
        print("\nOne cached decoding step (tiny-llama shape, one row)\n" + decode_operator_table(where), flush=True)
        decode = bench_decode(options.repeats, options.seed, options.large, where)
        _print_decode(decode)
        results["decode"] = [{**row.__dict__, "ratio": row.ratio} for row in decode]
    if not options.skip_throughput:
        results["throughput"] = _run_throughput(options)
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


def _run_throughput(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Section 3 with the agent the options name (or the serve tests' cached one)."""
    # the data of the serve tests' trained agent (tests/serve/trained.py), whose held-out tasks the clients run
    dataset = generate_synthetic(tools=12, trajectories=300, seed=5, test_fraction=0.1)
    agent = options.agent or _cached_test_agent()
    if agent:
        from mor.serve import load_agent
        from mor.settings import Settings

        print(f"\nThroughput agent: {agent}")
        loaded = load_agent(agent, Settings())
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        print("\nThroughput agent: tiny-llama with random adapters (run tests/serve once for a trained one)")
        model, tokenizer = _tiny_agent(dataset, options.seed, Path(tempfile.mkdtemp(prefix="mor-bench-")))
    print("\nThroughput runs:", flush=True)
    throughput = bench_throughput(
        model,
        tokenizer,
        dataset,
        [int(c) for c in options.clients.split(",")],
        options.modes.split(","),
        options.per_client,
    )
    _print_throughput(throughput)
    return [row.__dict__ for row in throughput]


if __name__ == "__main__":
    main()
