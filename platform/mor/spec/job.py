"""The job spec: one pydantic model per `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from mor.spec.sections import (
    BaseModelRef,
    DataSpec,
    EvalSpec,
    MoRSpec,
    RegisterSpec,
    RenderSpec,
    StrictModel,
    TrainSpec,
)

__all__ = ["TrainJobSpec", "DataJobSpec", "JobSpec", "job_spec_adapter"]

_NAME_PATTERN = r"^[a-z0-9][a-z0-9\-_]{0,62}$"


class TrainJobSpec(StrictModel):
    """Data → train → register → eval: the whole loop of one agent."""

    kind: Literal["train"] = Field(description="What the job does: train | data.")
    name: str = Field(pattern=_NAME_PATTERN, description="Job name (lowercase, digits, - and _), names the run.")
    description: str | None = Field(default=None, description="Free text shown in MLflow.")
    base_model: BaseModelRef = Field(description="The frozen base LLM: {builtin: …}, {path: …} or {hub: …}.")
    data: DataSpec = Field(description="Training data sources.")
    mor: MoRSpec = Field(default_factory=MoRSpec, description="Mixture-of-Roles adapters and losses.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Ray Train settings and hyper-parameters.")
    register_: RegisterSpec | None = Field(
        default=None, alias="register", description="Register the adapters in MLflow."
    )
    eval: EvalSpec | None = Field(default=None, description="Evaluate the trained agent after registering.")


class DataJobSpec(StrictModel):
    """Only the data stage: generate/convert trajectories and write role samples."""

    kind: Literal["data"] = Field(description="What the job does: train | data.")
    name: str = Field(pattern=_NAME_PATTERN, description="Job name.")
    description: str | None = Field(default=None, description="Free text.")
    data: DataSpec = Field(description="Data sources.")
    render: RenderSpec | None = Field(
        default_factory=RenderSpec,
        description="Render the training trajectories as role samples (Parquet, with token statistics in the "
        "manifest); null: store the trajectories only.",
    )


JobSpec = Annotated[TrainJobSpec | DataJobSpec, Field(discriminator="kind")]


def job_spec_adapter() -> TypeAdapter[Any]:
    """A TypeAdapter validating any job spec by its `kind`."""
    return TypeAdapter(JobSpec)
