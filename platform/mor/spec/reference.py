"""The job-spec field reference (jobs/README.md), generated from the pydantic models so it never drifts."""

from __future__ import annotations

from typing import Any

from mor.spec.job import DataJobSpec, TrainJobSpec

__all__ = ["field_reference"]


def _type_name(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema or "oneOf" in schema:
        parts = schema.get("anyOf") or schema.get("oneOf")
        return " | ".join(_type_name(part, defs) for part in parts)
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_name(schema.get('items', {}), defs)}]"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[str, {_type_name(schema['additionalProperties'], defs)}]"
    return str(kind)


def _section(title: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        default = "required" if name in required else f"`{prop['default']!r}`" if "default" in prop else "—"
        description = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        type_name = _type_name(prop, defs).replace("|", "\\|")
        lines.append(f"| `{name}` | {type_name} | {default} | {description} |")
    return lines + [""]


def field_reference() -> str:
    """Markdown describing every field of every job kind and section."""
    lines = [
        "# Job specs",
        "",
        "Every file here is a job spec: `mor job validate FILE` checks it, `mor job submit FILE` runs it.",
        "Unknown keys are errors. This reference is generated from the spec models",
        "(`python -m mor.spec.reference > jobs/README.md`); a test keeps it current.",
        "",
    ]
    seen: set[str] = set()
    for model in (TrainJobSpec, DataJobSpec):
        schema = model.model_json_schema(by_alias=True)
        defs = schema.get("$defs", {})
        lines += _section(f"kind: {model.model_fields['kind'].annotation.__args__[0]}", schema, defs)
        for name, sub in defs.items():
            if name not in seen and isinstance(sub, dict) and "properties" in sub:
                seen.add(name)
                lines += _section(name, sub, defs)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(field_reference(), end="")
