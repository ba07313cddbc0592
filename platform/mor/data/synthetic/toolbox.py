"""The synthetic tools as an environment: execute a call, get the observation (never an exception)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import jsonschema

from mor.data.schema import Tool
from mor.data.synthetic.catalog import CATALOG, ToolDef, ToolError, tool_def

__all__ = ["SyntheticToolbox", "observation_text"]


def observation_text(observation: dict[str, Any]) -> str:
    """The text an observation turn carries: compact, key order kept."""
    return json.dumps(observation, ensure_ascii=False)


class SyntheticToolbox:
    """Runs calls against the deterministic synthetic implementations of a set of tools."""

    def __init__(self, definitions: Iterable[ToolDef] = CATALOG) -> None:
        self._defs = {definition.name: definition for definition in definitions}
        self._validators = {
            name: jsonschema.Draft202012Validator(definition.tool().parameters)
            for name, definition in self._defs.items()
        }

    @classmethod
    def for_tools(cls, tools: Iterable[Tool | str]) -> SyntheticToolbox:
        """A toolbox holding the catalog tools of these names."""
        return cls(tool_def(tool if isinstance(tool, str) else tool.name) for tool in tools)

    @property
    def tools(self) -> list[Tool]:
        """The tools this toolbox runs."""
        return [definition.tool() for definition in self._defs.values()]

    def execute(self, name: str, arguments: Any) -> dict[str, Any]:
        """The observation of calling `name` with `arguments`: the result, or `{"error": ...}` for a bad call."""
        definition = self._defs.get(name)
        if definition is None:
            return {"error": f"unknown function '{name}'; available: {', '.join(self._defs)}"}
        if not isinstance(arguments, dict):
            return {"error": f"arguments of {name} must be a JSON object, got {type(arguments).__name__}"}
        problems = sorted(self._validators[name].iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if problems:
            where = ".".join(str(p) for p in problems[0].absolute_path) or "arguments"
            return {"error": f"invalid arguments for {name}: {where}: {problems[0].message}"}
        try:
            return definition.run(dict(arguments))
        except ToolError as error:
            observation: dict[str, Any] = {"error": error.message}
            if error.suggestion:
                observation["suggestion"] = error.suggestion
            return observation
        except (ArithmeticError, TypeError, ValueError, KeyError) as error:
            return {"error": f"{name} failed: {error}"}

    def __call__(self, name: str, arguments: Any) -> dict[str, Any]:
        return self.execute(name, arguments)
