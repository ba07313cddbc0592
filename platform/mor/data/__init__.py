"""Data: the unified trajectory format, sources (synthetic for now), rendering with role tags, collation."""

from mor.data.collate import RoleCollator, collate
from mor.data.io import read_tools, read_trajectories, write_tools, write_trajectories
from mor.data.render import (
    END,
    IGNORE_INDEX,
    Encoded,
    FitReport,
    Renderer,
    RoleSample,
    fit_samples,
    header,
    marker_tokens,
    render,
    render_prompt,
    render_text,
    tools_text,
    turn_text,
)
from mor.data.schema import CONTEXT_ROLES, DEFAULT_ROLES, Tool, ToolCall, Trajectory, TrajectoryMeta, Turn
from mor.data.sources import SourceData, read_source, register_source, source_names
from mor.data.synthetic import SyntheticDataset, SyntheticToolbox, generate_synthetic

__all__ = [
    "CONTEXT_ROLES",
    "DEFAULT_ROLES",
    "END",
    "IGNORE_INDEX",
    "Encoded",
    "FitReport",
    "Renderer",
    "RoleCollator",
    "RoleSample",
    "SourceData",
    "SyntheticDataset",
    "SyntheticToolbox",
    "Tool",
    "ToolCall",
    "Trajectory",
    "TrajectoryMeta",
    "Turn",
    "collate",
    "fit_samples",
    "generate_synthetic",
    "header",
    "marker_tokens",
    "read_source",
    "read_tools",
    "read_trajectories",
    "register_source",
    "render",
    "render_prompt",
    "render_text",
    "source_names",
    "tools_text",
    "turn_text",
    "write_tools",
    "write_trajectories",
]
