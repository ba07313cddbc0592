"""Pydantic models of the sections of a job spec. Every field carries a description (the field reference in
jobs/README.md is generated from the JSON schema)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mor.model import LoRAConfig, MoRConfig
from mor.model.config import DEFAULT_ROLE_NAMES

__all__ = [
    "StrictModel",
    "BuiltinBase",
    "PathBase",
    "HubBase",
    "BaseModelRef",
    "BaseDtype",
    "SyntheticParams",
    "SyntheticSource",
    "DATASET_REF_PATTERN",
    "DataSource",
    "DatasetSource",
    "DataSpec",
    "CompleteSpec",
    "DecontaminateSpec",
    "FileSourceParams",
    "SOURCE_FORMATS",
    "LossSpec",
    "MoRSpec",
    "TrainSpec",
    "RegisterSpec",
    "EvalSpec",
    "BUILTIN_BASES",
    "EVAL_SUITES",
]

BUILTIN_BASES = ("tiny-llama",)
EVAL_SUITES = ("synthetic",)


class StrictModel(BaseModel):
    """Base of every spec section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


BaseDtype = Literal["auto", "float32", "bfloat16", "float16"]


def _dtype_field() -> Any:
    return Field(
        default="float32",
        description="dtype the frozen base weights are loaded in for training: float32, bfloat16, float16, or auto "
        "(the dtype saved with the checkpoint). The adapters always keep float32 master weights.",
    )


class BuiltinBase(StrictModel):
    builtin: Literal["tiny-llama"] = Field(
        description="A small Llama-architecture model built from a config kept in the repo (random init, fixed "
        "seed, plus constructed copy circuits so the frozen base can copy values from its context), with a "
        "tokenizer trained on the job's own data. Runs anywhere without a download."
    )
    dtype: BaseDtype = _dtype_field()


class PathBase(StrictModel):
    path: Path = Field(
        description="A local directory written by `save_pretrained` (config, weights, tokenizer); relative paths "
        "are resolved against the spec file's directory."
    )
    dtype: BaseDtype = _dtype_field()

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Path, info: ValidationInfo) -> Path:
        spec_dir = (info.context or {}).get("spec_dir")
        resolved = value if value.is_absolute() or spec_dir is None else Path(spec_dir) / value
        if not resolved.is_dir():
            raise ValueError(
                f"got {str(value)!r}, no such directory (resolved to {resolved}); give a directory written by "
                "save_pretrained, e.g. path: ./checkpoints/base"
            )
        return resolved.resolve()


class HubBase(StrictModel):
    hub: str = Field(
        pattern=r"^[\w.\-]+(/[\w.\-]+)?$",
        description="A Hugging Face hub id, e.g. meta-llama/Llama-3.2-1B-Instruct (loaded with from_pretrained; "
        "offline machines need it in the local cache).",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    dtype: BaseDtype = _dtype_field()


def _base_model_form(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [key for key in ("builtin", "path", "hub") if key in value]
        return keys[0] if len(keys) == 1 else None
    for form, cls in (("builtin", BuiltinBase), ("path", PathBase), ("hub", HubBase)):
        if isinstance(value, cls):
            return form
    return None


BaseModelRef = Annotated[
    Annotated[BuiltinBase, Tag("builtin")] | Annotated[PathBase, Tag("path")] | Annotated[HubBase, Tag("hub")],
    Discriminator(
        _base_model_form,
        custom_error_type="base_model_form",
        custom_error_message="give exactly one of builtin, path or hub, e.g. base_model: {builtin: tiny-llama}",
    ),
]


class SyntheticParams(StrictModel):
    tools: int = Field(default=24, ge=4, le=29, description="How many synthetic tools to use (the catalog has 29).")
    trajectories: int = Field(default=2000, ge=10, le=1_000_000, description="Trajectories to generate in all.")
    seed: int = Field(default=0, description="Seed; the same seed gives the same data set.")
    test_fraction: float = Field(
        default=0.1, gt=0.0, lt=0.9, description="Share held out for evaluation (unseen tool combinations/values)."
    )


class SyntheticSource(StrictModel):
    synthetic: SyntheticParams = Field(
        default_factory=SyntheticParams, description="Deterministic synthetic tool-use trajectories."
    )


class FileSourceParams(StrictModel):
    path: str = Field(
        min_length=1,
        description="A file, a directory (searched for .json/.jsonl) or a glob pattern; relative paths are resolved "
        "against the spec file's directory.",
    )
    limit: int | None = Field(default=None, ge=1, description="Read at most this many trajectories from the source.")
    weight: float = Field(
        default=1.0,
        gt=0.0,
        le=100.0,
        description="How often the source's training trajectories are used: 2.0 repeats each twice, 0.5 keeps a "
        "seeded half (the held-out split is not weighted).",
    )

    @field_validator("path")
    @classmethod
    def _path_matches(cls, value: str, info: ValidationInfo) -> str:
        spec_dir = (info.context or {}).get("spec_dir")
        given = Path(value).expanduser()
        resolved = given if given.is_absolute() or spec_dir is None else Path(spec_dir) / given
        if not (resolved.exists() or glob.glob(str(resolved), recursive=True)):
            raise ValueError(
                f"got {value!r}, which names no file, directory or glob match (resolved to {resolved}); "
                "e.g. path: data/glaive_toolcall_en.json"
            )
        return str(resolved.resolve()) if resolved.exists() else str(resolved)


class ToolBenchParams(FileSourceParams):
    kind: Literal["auto", "answer", "toolllama", "query", "tool"] = Field(
        default="auto", description="Which ToolBench record type to read (auto: decided per record)."
    )
    tools_dir: str | None = Field(
        default=None, description="ToolBench's toolenv/tools folder (descriptions and parameters of query tools)."
    )
    include_give_up: bool = Field(default=True, description="Keep answers that end in give_up_and_restart.")
    all_steps: bool = Field(default=False, description="Read every step record of ToolLLaMA SFT files.")


class ShareGPTParams(FileSourceParams):
    columns: dict[str, str | None] | None = Field(
        default=None,
        description="LLaMA-Factory column and tag names (messages, system, tools, role_tag, content_tag, user_tag, "
        "assistant_tag, observation_tag, function_tag, system_tag) where they differ from the defaults.",
    )


class ToolACEParams(FileSourceParams):
    system_prompt: Literal["without_tools", "keep", "drop"] = Field(
        default="drop",
        description="ToolACE's system prompt: drop it (default: it asks for its own call syntax, which the role "
        "prompts replace), keep it without the tool list, or keep it whole.",
    )


class ToolBenchSource(StrictModel):
    toolbench: ToolBenchParams = Field(description="ToolBench answer trees, ToolLLaMA SFT data, queries or tools.")


class GlaiveSource(StrictModel):
    glaive: FileSourceParams = Field(
        description="glaive-function-calling-v2 in its raw SYSTEM/USER/ASSISTANT text form."
    )


class ShareGPTSource(StrictModel):
    sharegpt: ShareGPTParams = Field(
        description="LLaMA-Factory sharegpt with function_call / observation turns (e.g. its glaive_toolcall data)."
    )


class OpenAIMessagesSource(StrictModel):
    openai_messages: FileSourceParams = Field(
        description="OpenAI chat messages with tools, tool_calls and tool messages (e.g. exported logs)."
    )


class TypedMessagesSource(StrictModel):
    typed_messages: FileSourceParams = Field(
        description="LLaMA-Factory typed-content messages (text, reasoning and tool_call parts)."
    )


class ToolACESource(StrictModel):
    toolace: ToolACEParams = Field(description="ToolACE: tools in the system prompt, [Func(arg=value)] calls.")


class XLAMSource(StrictModel):
    xlam: FileSourceParams = Field(description="APIGen / xLAM function calling: query, tools and answers.")


#: `NAME`, `NAME@latest` or `NAME@VERSION` of a data set written by a `kind: data` job.
DATASET_REF_PATTERN = r"^[a-z0-9][a-z0-9\-_]{0,62}(@([1-9][0-9]*|latest))?$"


class DatasetSource(StrictModel):
    dataset: str = Field(
        pattern=DATASET_REF_PATTERN,
        description="A data set written by a kind: data job, as NAME or NAME@VERSION (latest when omitted); its "
        "train / held-out split is kept.",
    )


#: Each data source is a mapping with one key: the format's name.
SOURCE_FORMATS: dict[str, type[StrictModel]] = {
    "synthetic": SyntheticSource,
    "toolbench": ToolBenchSource,
    "glaive": GlaiveSource,
    "sharegpt": ShareGPTSource,
    "openai_messages": OpenAIMessagesSource,
    "typed_messages": TypedMessagesSource,
    "toolace": ToolACESource,
    "xlam": XLAMSource,
    "dataset": DatasetSource,
}


def _source_format(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [key for key in SOURCE_FORMATS if key in value]
        return keys[0] if len(keys) == 1 and len(value) == 1 else None
    return next((name for name, cls in SOURCE_FORMATS.items() if isinstance(value, cls)), None)


DataSource = Annotated[
    Annotated[SyntheticSource, Tag("synthetic")]
    | Annotated[ToolBenchSource, Tag("toolbench")]
    | Annotated[GlaiveSource, Tag("glaive")]
    | Annotated[ShareGPTSource, Tag("sharegpt")]
    | Annotated[OpenAIMessagesSource, Tag("openai_messages")]
    | Annotated[TypedMessagesSource, Tag("typed_messages")]
    | Annotated[ToolACESource, Tag("toolace")]
    | Annotated[XLAMSource, Tag("xlam")]
    | Annotated[DatasetSource, Tag("dataset")],
    Discriminator(
        _source_format,
        custom_error_type="data_source_format",
        custom_error_message="each source is a mapping with exactly one key, its format: "
        + ", ".join(SOURCE_FORMATS)
        + "; e.g. - sharegpt: {path: data/glaive_toolcall_en.json}",
    ),
]


class DecontaminateSpec(StrictModel):
    bfcl: list[str] | None = Field(
        default=None,
        description="BFCL categories whose questions no training query may copy (all when omitted; [] for none).",
    )
    stabletoolbench: list[str] | None = Field(
        default=None, description="StableToolBench groups likewise (all when omitted; [] for none)."
    )
    held_out: bool = Field(default=True, description="Also drop training queries that copy this job's held-out set.")
    ngram: int = Field(default=8, ge=2, le=32, description="Word n-gram length of the overlap check.")
    threshold: float = Field(
        default=0.5,
        ge=0.0,
        lt=1.0,
        description="Drop a training query when more than this share of its n-grams occurs in one evaluation item.",
    )


class CompleteSpec(StrictModel):
    parts: list[Literal["thought", "answer"]] = Field(
        default_factory=lambda: ["thought", "answer"],
        min_length=1,
        description="What to fill where a format lacks it: the reasoner's thoughts, final answers after results.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="An OpenAI-compatible API root (e.g. http://127.0.0.1:8000/v1, our served agent counts); "
        "without one, a deterministic rule-based completer writes the text from the calls and results.",
    )
    model: str | None = Field(default=None, description="The endpoint's model name (required with endpoint).")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the endpoint's API key.")
    requests_per_second: float | None = Field(
        default=2.0, gt=0.0, description="Client-side rate limit of the whole job (shared among the workers)."
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Processes asking the endpoint at once when the job runs on Ray Data (each keeps a connection).",
    )
    max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per request (429, 5xx, timeouts retried).")

    @field_validator("model", mode="after")
    @classmethod
    def _model_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("got an empty name; give the endpoint's model name, e.g. model: gpt-4o-mini")
        return value

    @model_validator(mode="after")
    def _endpoint_has_a_model(self) -> CompleteSpec:
        if self.endpoint and not self.model:
            raise ValueError("model is required with endpoint, e.g. model: gpt-4o-mini")
        return self


class RenderSpec(StrictModel):
    base_model: BaseModelRef = Field(
        default_factory=lambda: BuiltinBase(builtin="tiny-llama"),
        description="Whose tokenizer renders the role samples: the train job's base_model (a built-in base's "
        "tokenizer is trained on this data set's texts). A train job with the same tokenizer, roles and "
        "max_seq_len uses the samples as they are.",
    )
    roles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ROLE_NAMES),
        min_length=1,
        description="The agent roles in the order of the train job's mor.roles (a token's role id is its index).",
    )
    max_seq_len: int = Field(
        default=1024, ge=16, le=131072, description="Longer trajectories are dropped (as train.max_seq_len)."
    )


class DataSpec(StrictModel):
    sources: list[DataSource] = Field(min_length=1, description="Where training trajectories come from.")
    deduplicate: bool = Field(
        default=True,
        description="Keep one of the file sources' trajectories with the same user messages, calls and answers.",
    )
    complete: CompleteSpec | None = Field(
        default=None,
        description="Fill what a format lacks (thoughts, answers) before verification; completed fields are marked "
        "in each trajectory's metadata.completed. Responses of an endpoint are cached under MOR_HOME.",
    )
    verify: bool = Field(
        default=True,
        description="Drop file-source trajectories whose calls break their tools' schemas, call unknown functions, "
        "or whose observations answer no call (mor.data.verify); each dropped item keeps its reasons.",
    )
    verify_ignore: list[str] = Field(
        default_factory=list,
        description="Verification checks that neither drop nor count, e.g. [call_not_in_thought].",
    )
    decontaminate: DecontaminateSpec | None = Field(
        default=None,
        description="Drop training items whose query copies an evaluation item (BFCL and StableToolBench data from "
        "the benchmarks directory, MOR_BENCHMARKS_DIR, and the held-out set).",
    )
    test_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=0.9,
        description="Share of the file sources' trajectories held out for evaluation (the synthetic source splits "
        "by its own test_fraction).",
    )
    seed: int = Field(default=0, description="Seed of the file sources' train / held-out split.")


class LossSpec(StrictModel):
    aux_weight: float = Field(
        default=0.01, ge=0.0, description="α1: weight of the router load-balancing loss (0: the no-aux-loss ablation)."
    )
    orth_weight: float = Field(
        default=0.001,
        ge=0.0,
        description="α2: weight of the intra-role orthogonality loss (0: the no-orthogonality-loss ablation).",
    )


# The adapter fields, their defaults and their checks are mor.model's MoRConfig, defined once there; give
# `adapter_config()` / `lora_config()`, not the section itself, to `apply_mor` / `apply_lora` (saved adapters hold a
# plain MoRConfig or LoRAConfig).
class MoRSpec(MoRConfig):
    """Mixture-of-Roles adapters (mor.model's MoRConfig, the paper's setting by default) and the loss weights, or
    the plain-LoRA baseline (adapter: lora). The paper's ablations are settings: routed: 0 with shared: true in every
    role (no routing), role_split: false (no role split), loss.aux_weight: 0, loss.orth_weight: 0."""

    adapter: Literal["mor", "lora"] = Field(
        default="mor",
        description="mor: Mixture-of-Roles LoRA groups. lora: the baseline, one plain PEFT LoRA (rank, alpha, "
        "dropout) on the same target_modules serving every role, saved in PEFT's format (PeftModel.from_pretrained, "
        "vLLM --lora-modules); roles then only name the agent's roles (their routed, top_k, shared are unused) and "
        "the loss weights are 0.",
    )
    loss: LossSpec = Field(default_factory=LossSpec, description="Weights of the auxiliary losses.")

    @model_validator(mode="before")
    @classmethod
    def _lora_trains_on_ce_alone(cls, data: Any) -> Any:
        """A LoRA's loss weights default to 0 (it has no router and no role groups)."""
        if isinstance(data, dict) and data.get("adapter") == "lora" and "loss" not in data:
            return {**data, "loss": {"aux_weight": 0.0, "orth_weight": 0.0}}
        return data

    @model_validator(mode="after")
    def _lora_has_no_routing_settings(self) -> MoRSpec:
        if self.adapter != "lora":
            return self
        problems = []
        if self.loss.aux_weight or self.loss.orth_weight:
            problems.append(
                "loss: a plain LoRA has no router and no role groups, so aux_weight and orth_weight do nothing; "
                "remove loss or set both to 0"
            )
        if not self.role_split:
            problems.append("role_split: false is a MoR ablation; a plain LoRA serves every role already, remove it")
        if problems:
            raise ValueError("adapter: lora: " + "; ".join(problems))
        return self

    def adapter_config(self) -> MoRConfig:
        """The MoR adapter configuration of this section: everything but the adapter choice and the loss weights."""
        return MoRConfig.model_validate(self.model_dump(exclude={"loss", "adapter"}))

    def lora_config(self) -> LoRAConfig:
        """The plain-LoRA configuration of this section (adapter: lora): rank, alpha, dropout, target modules and
        the role names."""
        return LoRAConfig(
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            target_modules=list(self.target_modules),
            roles=self.role_names,
        )


class TrainSpec(StrictModel):
    epochs: float = Field(default=4.0, gt=0.0, le=1000.0, description="Passes over the training data.")
    max_steps: int | None = Field(default=None, gt=0, description="Stop after this many optimizer steps.")
    lr: float = Field(default=5.0e-5, gt=0.0, lt=1.0, description="AdamW learning rate (paper: 5e-5).")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0, description="Linear warm-up share of the steps.")
    grad_clip: float = Field(default=1.0, gt=0.0, description="Gradient-norm clipping.")
    batch_size: int = Field(
        default=8, ge=1, le=4096, description="Sequences per worker per micro-batch (grad_accum_steps per step)."
    )
    max_seq_len: int = Field(default=1024, ge=16, le=131072, description="Longer trajectories are dropped.")
    workers: int = Field(default=2, ge=1, le=4096, description="Ray Train workers (data-parallel).")
    use_gpu: bool = Field(default=False, description="One GPU per worker (NCCL between workers; gloo on CPU).")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="Compute precision of the forward pass: fp32, or bf16/fp16 mixed precision with torch.autocast "
        "(adapter master weights stay float32). fp16 adds a gradient scaler and needs use_gpu: true.",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute the base model's layer activations in the backward pass instead of keeping them "
        "(less memory, about a third more compute).",
    )
    grad_accum_steps: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Micro-batches of batch_size per optimizer step (gradients accumulated, synchronised between "
        "workers once per step); max_steps, log_every, checkpoint_every and the LR schedule count optimizer steps.",
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="Data-parallel strategy of Ray Train's prepare_model: ddp (replicated model), or fsdp (the frozen "
        "base sharded per decoder layer across workers, the adapters replicated); fsdp needs use_gpu: true.",
    )
    checkpoint_every: int = Field(default=50, ge=1, description="Save a checkpoint every N optimizer steps.")
    max_failures: int = Field(default=2, ge=0, description="Worker-group restarts from the latest checkpoint.")
    log_every: int = Field(default=5, ge=1, description="Report metrics every N steps.")
    seed: int = Field(default=0, description="Seed of initialisation, shuffling and dropout.")

    @field_validator("precision")
    @classmethod
    def _fp16_needs_gpu(cls, value: str, info: ValidationInfo) -> str:
        if value == "fp16" and not info.data.get("use_gpu"):
            raise ValueError(
                "got 'fp16' with use_gpu: false; fp16 mixed precision (with its gradient scaler) is for CUDA GPUs. "
                "On CPU use precision: bf16 (float32's range, no scaler needed) or fp32"
            )
        return value

    @field_validator("strategy")
    @classmethod
    def _fsdp_needs_gpu(cls, value: str, info: ValidationInfo) -> str:
        if value == "fsdp" and not info.data.get("use_gpu"):
            raise ValueError(
                "got 'fsdp' with use_gpu: false; Ray Train's prepare_model wraps a model in FSDP only when CUDA is "
                "available. On CPU use strategy: ddp, or set use_gpu: true"
            )
        return value


class RegisterSpec(StrictModel):
    model_name: str = Field(
        pattern=r"^[A-Za-z0-9][\w.\-]*$", description="Registered model name in MLflow, e.g. mor-agent."
    )
    alias: str | None = Field(
        default="candidate", pattern=r"^[A-Za-z][\w\-]*$", description="Alias set on the new version."
    )


class EvalSpec(StrictModel):
    suites: list[Annotated[str, Field(pattern=r"^[a-z_]+(/[a-z_]+)?$")]] = Field(
        default_factory=lambda: ["synthetic"], description="Suites to run after training, e.g. synthetic."
    )
    max_items: int | None = Field(default=None, gt=0, description="Evaluate at most this many items per suite.")
    max_steps: int = Field(default=8, ge=1, le=64, description="Reasoner turns per item before giving up.")
    batch_size: int = Field(
        default=16, ge=1, le=256, description="Held-out episodes run together, one batched forward per step."
    )
    baseline: Literal["untrained", "none"] = Field(
        default="untrained",
        description="Also score the base with every adapter off on the same items (reused when stored with the same "
        "configuration); a trained agent at or below it is flagged and `mor job submit` exits 3. none: skip it.",
    )

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s.split("/")[0] not in EVAL_SUITES]
        if unknown:
            raise ValueError(f"got {unknown}; known suites: {list(EVAL_SUITES)}, e.g. suites: [synthetic]")
        return value
