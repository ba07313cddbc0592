"""Deterministic synthetic tool-use data: a tool catalog with executable implementations and multi-role
trajectories split into train and a held-out test set."""

from mor.data.synthetic.catalog import CATALOG, ToolDef, catalog_tools, tool_def
from mor.data.synthetic.dataset import SyntheticDataset, generate_synthetic
from mor.data.synthetic.generator import CATEGORIES
from mor.data.synthetic.toolbox import SyntheticToolbox, observation_text
from mor.data.synthetic.values import ValueSplit

__all__ = [
    "CATALOG",
    "CATEGORIES",
    "SyntheticDataset",
    "SyntheticToolbox",
    "ToolDef",
    "ValueSplit",
    "catalog_tools",
    "generate_synthetic",
    "observation_text",
    "tool_def",
]
