"""`mor data`: the data sets written by `kind: data` jobs."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mor.settings import Settings

__all__ = ["data_app"]

data_app = typer.Typer(help="Data sets written by kind: data jobs.", no_args_is_help=True)

#: Colours of the turn markers in rendered samples; other roles get the last one.
_ROLE_STYLES = {
    "system": "dim",
    "user": "bold cyan",
    "observation": "yellow",
    "reasoner": "bold magenta",
    "executor": "bold green",
    "summarizer": "bold blue",
    "": "bold white",
}
_MARKER = re.compile(r"<\|([a-z_]+)\|>")


def _coloured(text: str) -> Text:
    """Rendered training text with each turn's marker and body in its role's colour."""
    out = Text()
    style = ""
    position = 0
    for match in _MARKER.finditer(text):
        out.append(text[position : match.start()], style=style if style != "dim" else "dim")
        role = match.group(1)
        if role != "end":
            style = _ROLE_STYLES.get(role, _ROLE_STYLES[""])
        out.append(match.group(0), style=f"{style} reverse" if role != "end" else "dim")
        position = match.end()
    out.append(text[position:], style=style)
    return out


@data_app.command("inspect")
def inspect(
    reference: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (latest when omitted)")],
    samples: Annotated[int, typer.Option(min=0, help="How many rendered training samples to show")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON")] = False,
) -> None:
    """Show a data set's manifest and a few rendered samples, their role tags coloured per role."""
    from mor.data import render_text
    from mor.data.io import iter_trajectories
    from mor.data.store import resolve_dataset

    console = Console()
    try:
        stored = resolve_dataset(reference, Settings().datasets_dir)
    except (ValueError, FileNotFoundError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(stored.manifest, indent=2, ensure_ascii=False))
        return
    manifest = stored.manifest
    table = Table(title=f"data set {stored.name}@{stored.version} ({manifest.get('created')})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("trajectories", f"{manifest.get('train')} train, {manifest.get('test')} held out")
    table.add_row("by source", ", ".join(f"{k} {v}" for k, v in (manifest.get("by_source") or {}).items()))
    table.add_row("turns by role", ", ".join(f"{k} {v}" for k, v in (manifest.get("turns_by_role") or {}).items()))
    table.add_row("missing parts", ", ".join(f"{k} {v}" for k, v in (manifest.get("missing") or {}).items()) or "none")
    for source in manifest.get("sources") or []:
        checks = source.get("failed_verification") or {}
        table.add_row(
            f"source {source.get('format')}",
            f"{source.get('train')} train, {source.get('test')} held out; malformed {source.get('malformed')}, "
            f"duplicates {source.get('duplicates', 0)}, failed checks {checks.get('dropped', 0)}, without agent "
            f"turns {source.get('without_agent_turns', 0)}  ({source.get('path') or 'generated'})",
        )
        filled = (source.get("completion") or {}).get("filled") or {}
        if filled:
            table.add_row(f"  completed ({source.get('format')})", ", ".join(f"{k} {v}" for k, v in filled.items()))
    rendered = manifest.get("samples") or {}
    stats = rendered.get("stats") or {}
    if stats:
        length, fit = stats.get("length") or {}, stats.get("fit") or {}
        table.add_row(
            "role samples",
            f"{stats.get('sequences')} samples, {stats.get('tokens')} tokens ({stats.get('learned_tokens')} learned); "
            f"dropped over max_seq_len {rendered.get('max_seq_len')}: {fit.get('dropped', 0)}",
        )
        table.add_row(
            "learned tokens by role",
            ", ".join(f"{k} {v}" for k, v in (stats.get("learned_tokens_by_role") or {}).items()),
        )
        table.add_row(
            "sample length",
            f"mean {length.get('mean')}, p50 {length.get('p50')}, p95 {length.get('p95')}, max {length.get('max')}",
        )
        table.add_row("rendered with", f"{rendered.get('base_model')} roles {rendered.get('roles')}")
    decontamination = manifest.get("decontamination")
    if decontamination:
        table.add_row(
            "decontaminated", f"{decontamination.get('dropped')} dropped: {decontamination.get('dropped_per_suite')}"
        )
    table.add_row("where", str(stored.directory))
    console.print(table)
    if stats and (stored.directory / str(rendered.get("file"))).is_file() and samples:
        _show_samples(console, stored.directory, rendered, samples)
        return
    for trajectory in islice(iter_trajectories(stored.directory / "train.jsonl"), samples):
        console.rule(f"{trajectory.id}  [dim]{getattr(trajectory.metadata, 'origin', '') or ''}[/]")
        console.print(_coloured(render_text(trajectory)))


def _show_samples(console: Console, directory: Path, rendered: dict[str, Any], count: int) -> None:
    """The first rendered role samples, decoded: every run of one role's tokens in that role's colour, learned
    tokens bold (the labels), tokens only read dim."""
    from transformers import AutoTokenizer

    from mor.data.samples import role_segments, sample_rows

    tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))
    for row in sample_rows(directory / str(rendered["file"]), count):
        console.rule(f"{row['trajectory_id']}  [dim]source {row['source']}, {len(row['input_ids'])} tokens[/]")
        text = Text()
        for segment in role_segments(row, tokenizer, rendered.get("roles") or []):
            style = _ROLE_STYLES.get(segment["role"], _ROLE_STYLES[""])
            text.append(segment["text"], style=style if segment["learned"] else "dim")
        console.print(text)
    console.print("[dim]learned tokens bold in their role's colour; tokens the role only reads dim[/]")
