"""Job specs: strict pydantic models and YAML loading with precise errors."""

from mor.spec.job import DataJobSpec, JobSpec, TrainJobSpec, job_spec_adapter
from mor.spec.load import SpecError, load_spec, parse_spec
from mor.spec.sections import (
    BuiltinBase,
    DataSpec,
    DecontaminateSpec,
    EvalSpec,
    HubBase,
    LossSpec,
    MoRSpec,
    PathBase,
    RegisterSpec,
    RenderSpec,
    SyntheticParams,
    SyntheticSource,
    TrainSpec,
)

__all__ = [
    "BuiltinBase",
    "DataJobSpec",
    "DataSpec",
    "DecontaminateSpec",
    "EvalSpec",
    "HubBase",
    "JobSpec",
    "LossSpec",
    "MoRSpec",
    "PathBase",
    "RegisterSpec",
    "RenderSpec",
    "SpecError",
    "SyntheticParams",
    "SyntheticSource",
    "TrainJobSpec",
    "TrainSpec",
    "job_spec_adapter",
    "load_spec",
    "parse_spec",
]
