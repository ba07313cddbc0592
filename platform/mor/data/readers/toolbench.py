"""ToolBench (ToolLLM, Qin et al. 2023; github.com/OpenBMB/ToolBench, Apache-2.0) read into unified trajectories.

Four kinds of record, told apart per record (`kind="auto"`) or named by `kind`:

* `answer`: a raw answer file of ToolBench's search (`data/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json`, one
  object per file: the DFSDT `tree`, `compare_candidates` and `answer_generation`). The chain read is
  `answer_generation.train_messages[-1]`: the messages of the node ToolBench chose, up to its `Finish` call (the
  first terminal node with an answer; failing that, a give-up node, `finish_type: "give_up"`). A file whose
  `valid_data` is false has no such chain and is reported as malformed.
* `toolllama`: ToolLLaMA's SFT data (`data/toolllama/processed_answer/*.json`): `conversations` of system, user,
  assistant (`Thought: ...\\nAction: ...\\nAction Input: ...`) and function turns. ToolBench writes one record per
  assistant step, each the prefix of the next; only the last of such a run is read unless `all_steps`.
* `query`: a query (`data/instruction/G1_query.json`): `query`, `api_list`, `query_id`, `relevant APIs`. It becomes
  a system turn (the tools offered) and a user turn, with `metadata.missing = ["thought", "calls", "answer"]` for
  the completion stage.
* `tool`: a tool definition (`toolenv/tools/<Category>/<tool>.json`): its APIs as tools and a system turn naming
  the tool, with `metadata.missing = ["query", "thought", "calls", "answer"]`.

ReAct steps map to turns as `mor.data.readers.base` sets out: the system message → `system`; the first user message
→ `user` (the query, ToolBench's trailing "Begin!" removed); a later user message (DFSDT's "this is not the first
time you try this task" prompt) → `user`; Thought → `reasoner` (`thought`, `next_role="executor"`; `None` and
`"thought"` in `metadata.missing` when empty); Action + Action Input → `executor` (`ToolCall`, `id="call_<n>"`); the
function's response → `observation`; `Finish` with `give_answer` → `reasoner` (`next_role="summarizer"`) and
`summarizer` with the final answer; `Finish` with `give_up_and_restart` → the same, the answer being ToolBench's
phrase "I give up and restart." and `metadata.give_up` true. `Finish` itself is not offered as a tool: the
summarizer turn replaces it.

Functions are named as ToolBench's environment names them, `<api>_for_<tool>` (both standardised, the last 64
characters kept), with its descriptions and parameter names and types (`NUMBER` → integer, `BOOLEAN` → boolean,
anything else → string), so tools read from queries and tool files match those of the answers and of
StableToolBench. An API's `default` is an example value, kept as JSON Schema `examples`; optional parameters are
kept (ToolBench drops them from an API without required ones).

Metadata: `source` ("toolbench"), `origin` (`<file>:<position>`), `category` (G1/G2/G3 when the file name or its
folders say so), `kind`, `missing`, and `give_up` (answers, ToolLLaMA), `query_id` (answers, queries),
`relevant_functions` (queries that list `relevant APIs`).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from mor.data.readers.base import Malformed, expand_paths, iter_json_records, normalise_parameters
from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["KINDS", "read_toolbench"]

Kind = Literal["auto", "answer", "toolllama", "query", "tool"]
KINDS: tuple[str, ...] = ("auto", "answer", "toolllama", "query", "tool")

_SOURCE = "toolbench"
_FINISH = "Finish"
_GIVE_UP = "I give up and restart."
_APIS_MARKER = "Specifically, you have access to the following APIs:"
_PARAMETER_TYPES = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}
_RENAMED = {"from", "class", "return", "false", "true", "id", "and"}  # ToolBench prefixes these with "is_"
_DESCRIPTION_CHARS = 256
# ToolBench's character class (its `^` after the first are literal, so `^` survives standardisation).
_NOT_NAME = re.compile(r"[^\u4e00-\u9fa5^a-zA-Z0-9_]")
_CATEGORY = re.compile(r"(?:^|[^A-Za-z0-9]|query)G([123])(?![0-9])")
_REACT = re.compile(
    r"\A\s*(?:Thought:(?P<thought>.*?)\n)?\s*Action:[ \t]*(?P<action>[^\n]*)\n\s*Action Input:(?P<input>.*)\Z", re.S
)


class _Bad(ValueError):
    """A record that cannot be read; the message is the Malformed reason."""


def read_toolbench(
    path: str | Path,
    *,
    kind: Kind = "auto",
    tools_dir: str | Path | None = None,
    include_give_up: bool = True,
    all_steps: bool = False,
) -> Iterator[Trajectory | Malformed]:
    """Every ToolBench record under `path` (a file, a directory or a glob) as a trajectory or a `Malformed` report.

    `kind`: `auto` (told apart per record), `answer`, `toolllama`, `query` or `tool` (see the module docstring).
    `tools_dir`: ToolBench's `toolenv/tools` directory; query trajectories then name each tool with its description,
    and a query's API given by name only (no parameters) is documented from its tool's file.
    `include_give_up`: keep answers that end with `Finish(give_up_and_restart)` (`metadata.give_up` true).
    `all_steps`: read every ToolLLaMA step record, not only the last of each run of prefixes.
    Raises `ValueError` for an unknown kind and `FileNotFoundError` for a path or `tools_dir` that names nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: got {kind!r}, must be one of {', '.join(KINDS)}; e.g. kind='answer'")
    files = expand_paths(path)
    catalog = _ToolCatalog(Path(tools_dir).expanduser()) if tools_dir is not None else None
    if catalog is not None and not catalog.root.is_dir():
        raise FileNotFoundError(
            f"tools_dir: {str(tools_dir)!r} is not a directory; give ToolBench's toolenv/tools "
            "(it holds <Category>/<tool>.json)"
        )
    return _read(files, kind=kind, catalog=catalog, include_give_up=include_give_up, all_steps=all_steps)


def _read(
    files: Sequence[Path], *, kind: str, catalog: _ToolCatalog | None, include_give_up: bool, all_steps: bool
) -> Iterator[Trajectory | Malformed]:
    for file in files:
        previous: tuple[str, Any] | None = None
        for position, record in itertools.chain(iter_json_records(file), [(None, None)]):
            if previous is not None and (all_steps or not _extends(record, previous[1])):
                item = _convert(file, *previous, kind=kind, catalog=catalog)
                if isinstance(item, Malformed) or include_give_up or not getattr(item.metadata, "give_up", False):
                    yield item
            previous = (position, record) if position is not None else None


def _extends(record: Any, previous: Any) -> bool:
    """Whether `record` is a later ToolLLaMA step of `previous` (its conversation starts with all of the other's)."""
    if not (isinstance(record, Mapping) and isinstance(previous, Mapping)):
        return False
    later, earlier = record.get("conversations"), previous.get("conversations")
    return (
        isinstance(later, list)
        and isinstance(earlier, list)
        and 0 < len(earlier) < len(later)
        and later[: len(earlier)] == earlier
    )


def _convert(
    file: Path, position: str, record: Any, *, kind: str, catalog: _ToolCatalog | None
) -> Trajectory | Malformed:
    if isinstance(record, ValueError):
        return Malformed(_SOURCE, str(file), position, str(record))
    found = _kind_of(record) if kind == "auto" else kind
    try:
        if found is None or not isinstance(record, Mapping):
            keys = sorted(record)[:8] if isinstance(record, Mapping) else type(record).__name__
            raise _Bad(
                f"not a ToolBench record (got {keys}); expected answer_generation (an answer), conversations "
                "(ToolLLaMA), query + api_list (a query) or tool_name + api_list (a tool definition)"
            )
        context = _Context(file, position, found)
        if found == "answer":
            return _answer(record, context)
        if found == "toolllama":
            return _toolllama(record, context)
        if found == "query":
            return _query(record, context, catalog)
        return _tool_file(record, context)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = str(error) if isinstance(error, _Bad) else f"{type(error).__name__}: {' '.join(str(error).split())}"
        return Malformed(_SOURCE, str(file), position, reason[:500])


def _kind_of(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    if "answer_generation" in record:
        return "answer"
    if "conversations" in record:
        return "toolllama"
    if "query" in record and "api_list" in record:
        return "query"
    if "api_list" in record and ("tool_name" in record or "standardized_name" in record):
        return "tool"
    return None


class _Context:
    """Where a record comes from: its file, position and kind, and what follows from them (category, ids)."""

    def __init__(self, file: Path, position: str, kind: str) -> None:
        self.file = file
        self.position = position
        self.kind = kind
        self.category = _category(file)

    def id(self, *parts: object) -> str:
        return "/".join([_SOURCE, self.kind, *([self.category] if self.category else []), *map(str, parts)])

    def metadata(self, missing: list[str], **extra: Any) -> TrajectoryMeta:
        return TrajectoryMeta(
            source=_SOURCE,
            category=self.category,
            origin=f"{self.file}:{self.position}",
            kind=self.kind,
            missing=missing,
            **extra,
        )


def _category(file: Path) -> str | None:
    """G1, G2 or G3 when the file's name or one of its two folders says so (`G1_answer`, `queryG2_demo.json`)."""
    for part in reversed(file.parts[-3:]):
        match = _CATEGORY.search(part)
        if match:
            return f"G{match.group(1)}"
    return None


# ---- answers and ToolLLaMA conversations: one ReAct chain -------------------------------------------------------


class _Chain:
    """The turns of one ReAct chain, built message by message (call ids numbered over the chain)."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.pending: ToolCall | None = None
        self.calls = 0
        self.finished = False
        self.give_up = False

    def context(self, role: str, content: Any, where: str) -> None:
        if self.finished:
            raise _Bad(f"{where}: a {role} message after Finish")
        text = _text(content, where)
        if role == "user" and not any(turn.role == "user" for turn in self.turns):
            text = _query_text(text)
        self.turns.append(Turn(role=role, content=text))

    def step(self, thought: str | None, name: str, arguments: Any, where: str) -> None:
        if self.finished:
            raise _Bad(f"{where}: an action after Finish")
        thought = thought.strip() if thought else None
        name = name.strip()
        if not name:
            raise _Bad(f"{where}: an action without a function name")
        values = _arguments(arguments, where)
        if name == _FINISH:
            self.turns.append(Turn(role="reasoner", thought=thought or None, next_role="summarizer"))
            self.turns.append(Turn(role="summarizer", content=self._answer(values, where)))
            self.finished = True
            self.pending = None
            return
        self.calls += 1
        call = ToolCall(name=name, arguments=values, id=f"call_{self.calls}")
        self.turns.append(Turn(role="reasoner", thought=thought or None, next_role="executor"))
        self.turns.append(Turn(role="executor", calls=[call]))
        self.pending = call

    def _answer(self, values: dict[str, Any], where: str) -> str:
        return_type = values.get("return_type")
        answer = values.get("final_answer")
        if return_type == "give_answer":
            if not isinstance(answer, str) or not answer.strip():
                raise _Bad(f"{where}: Finish gives an answer (give_answer) but final_answer is empty or missing")
            return answer
        if return_type == "give_up_and_restart":
            self.give_up = True
            return answer.strip() if isinstance(answer, str) and answer.strip() else _GIVE_UP
        raise _Bad(f"{where}: Finish return_type: got {return_type!r}, expected give_answer or give_up_and_restart")

    def observation(self, content: Any, name: Any, where: str) -> None:
        if self.finished:
            return  # Finish's own response ("successfully giving the final answer")
        if self.pending is None:
            raise _Bad(f"{where}: a function response with no call before it")
        if isinstance(name, str) and name and name != self.pending.name:
            raise _Bad(f"{where}: a response of {name!r}, but the call before it is {self.pending.name!r}")
        self.turns.append(Turn(role="observation", content=_text(content, where), call_id=self.pending.id))
        self.pending = None

    def missing(self, tools: Sequence[Tool]) -> list[str]:
        missing = []
        if not any(turn.role == "user" for turn in self.turns):
            missing.append("query")
        if any(turn.next_role is not None and turn.thought is None for turn in self.turns):
            missing.append("thought")
        if not self.finished:
            missing.append("answer")
        if not tools:
            missing.append("tools")
        return missing


def _answer(record: Mapping[str, Any], context: _Context) -> Trajectory:
    generation = record.get("answer_generation")
    if not isinstance(generation, Mapping):
        raise _Bad("answer_generation: missing or not an object")
    if generation.get("valid_data") is False:
        raise _Bad("answer_generation.valid_data is false: the search ended with neither an answer nor a give-up")
    chains = generation.get("train_messages")
    if not isinstance(chains, list) or not chains or not isinstance(chains[-1], list) or not chains[-1]:
        raise _Bad("answer_generation.train_messages: missing or empty; its last entry is the chosen chain")
    functions = generation.get("function") or []
    if not isinstance(functions, list):
        raise _Bad("answer_generation.function: expected a list of functions")
    tools = _unique(_function_tool(entry, f"answer_generation.function[{i}]") for i, entry in enumerate(functions))
    chain = _Chain()
    thoughts: list[str] = []
    for index, message in enumerate(chains[-1]):
        where = f"train_messages[-1][{index}]"
        if not isinstance(message, Mapping):
            raise _Bad(f"{where}: got {type(message).__name__}, expected a message object")
        role = message.get("role")
        if role == "assistant":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                thoughts.append(content.strip())
            call = message.get("function_call")
            if call is None:
                continue  # a thought alone: its action is in the next assistant message
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise _Bad(f"{where}: function_call without a name")
            chain.step("\n".join(thoughts), call["name"], call.get("arguments"), where)
            thoughts = []
            continue
        if thoughts:
            raise _Bad(f"{where}: the assistant's thought before this message has no action")
        if role in ("system", "user"):
            chain.context(role, message.get("content"), where)
        elif role == "function":
            chain.observation(message.get("content"), message.get("name"), where)
        else:
            raise _Bad(f"{where}: role {role!r}, expected system, user, assistant or function")
    if thoughts:
        raise _Bad("train_messages[-1]: the chain ends with a thought and no action")
    query_id = _leading_number(context.file.stem)
    return Trajectory(
        id=context.id(context.file.stem),
        tools=tools,
        turns=chain.turns,
        metadata=context.metadata(
            chain.missing(tools),
            give_up=chain.give_up,
            **({"query_id": query_id} if query_id is not None else {}),
        ),
    )


def _toolllama(record: Mapping[str, Any], context: _Context) -> Trajectory:
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise _Bad("conversations: missing or empty")
    chain = _Chain()
    tools: list[Tool] = []
    for index, message in enumerate(conversations):
        where = f"conversations[{index}]"
        if not isinstance(message, Mapping):
            raise _Bad(f"{where}: got {type(message).__name__}, expected {{'from': ..., 'value': ...}}")
        role, value = message.get("from"), message.get("value")
        if role == "system":
            prompt, tools = _split_system(_text(value, where), where)
            chain.context("system", prompt, where)
        elif role == "user":
            chain.context("user", value, where)
        elif role == "assistant":
            match = _REACT.match(_text(value, where))
            if match is None:
                raise _Bad(f"{where}: the assistant's reply is not 'Thought: ...\\nAction: ...\\nAction Input: ...'")
            chain.step(match["thought"], match["action"], match["input"].strip(), where)
        elif role == "function":
            chain.observation(value, None, where)
        else:
            raise _Bad(f"{where}: from {role!r}, expected system, user, assistant or function")
    return Trajectory(
        id=context.id(context.file.stem, context.position.removeprefix("index ").replace(" ", "")),
        tools=tools,
        turns=chain.turns,
        metadata=context.metadata(chain.missing(tools), give_up=chain.give_up),
    )


def _split_system(prompt: str, where: str) -> tuple[str, list[Tool]]:
    """ToolLLaMA's system prompt ends with the functions as a Python list: the prose before it, and the tools."""
    prose, marker, listing = prompt.partition(_APIS_MARKER)
    if not marker:
        return prompt, []
    try:
        functions = ast.literal_eval(listing.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        raise _Bad(f"{where}: the API list after {_APIS_MARKER!r} is not a Python list literal") from None
    if not isinstance(functions, list):
        raise _Bad(f"{where}: the API list after {_APIS_MARKER!r} is a {type(functions).__name__}, not a list")
    return prose.rstrip(), _unique(_function_tool(entry, f"{where}: API {i}") for i, entry in enumerate(functions))


def _function_tool(entry: Any, where: str) -> Tool | None:
    """An OpenAI-style function of an answer as a Tool (None for Finish, which the summarizer turn replaces)."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise _Bad(f"{where}: a function without a name")
    if entry["name"] == _FINISH:
        return None
    raw = entry.get("parameters")
    try:
        parameters = normalise_parameters(raw)
    except ValueError as error:
        raise _Bad(f"{where} ({entry['name']}): {error}") from None
    if isinstance(raw, Mapping) and isinstance(raw.get("properties"), Mapping):
        for name, spec in raw["properties"].items():
            if isinstance(spec, Mapping) and "example_value" in spec and name in parameters["properties"]:
                parameters["properties"][name]["examples"] = [spec["example_value"]]
    return Tool(name=entry["name"], description=str(entry.get("description") or ""), parameters=parameters)


# ---- queries and tool definitions: ToolBench's API documentation -----------------------------------------------


def _standardize(name: str) -> str:
    """ToolBench's `standardize`: non-name characters to `_`, runs of `_` merged, trimmed, lower case, `get_` before
    a leading digit."""
    text = re.sub(r"_+", "_", _NOT_NAME.sub("_", name)).lower().strip("_")
    return f"get_{text}" if text[:1].isdigit() else text


def _parameter_name(name: str) -> str:
    text = _standardize(name)
    return f"is_{text}" if text in _RENAMED else text


def _function_name(api: str, tool: str) -> str:
    """ToolBench's function name for API `api` of the tool standardised as `tool`: `<api>_for_<tool>`."""
    return f"{_parameter_name(api)}_for_{tool}"[-64:]


def _api_tool(api: Any, tool: str, where: str) -> Tool:
    """One API (`api_name`/`name`, `api_description`/`description`, required and optional parameters) as a Tool
    named and described as ToolBench's environment offers it."""
    if not isinstance(api, Mapping):
        raise _Bad(f"{where}: got {type(api).__name__}, expected an API object")
    title = api.get("api_name", api.get("name"))
    if not isinstance(title, str) or not title.strip():
        raise _Bad(f"{where}: an API without api_name")
    name = _function_name(title, tool)
    description = f'This is the subfunction for tool "{tool}", you can use this tool.'
    text = str(api.get("api_description", api.get("description")) or "").strip()
    if text:
        description += f'The description of this function is: "{text.replace(title, name)[:_DESCRIPTION_CHARS]}"'
    entries: list[dict[str, Any]] = []
    examples: dict[str, Any] = {}
    for required, key in ((True, "required_parameters"), (False, "optional_parameters")):
        parameters = api.get(key) or []
        if not isinstance(parameters, list):
            raise _Bad(f"{where}.{key}: expected a list of parameters")
        for index, parameter in enumerate(parameters):
            if not isinstance(parameter, Mapping) or not isinstance(parameter.get("name"), str):
                raise _Bad(f"{where}.{key}[{index}]: a parameter without a name")
            argument = _parameter_name(parameter["name"])
            entries.append(
                {
                    "name": argument,
                    "type": _PARAMETER_TYPES.get(str(parameter.get("type")), "string"),
                    "description": str(parameter.get("description") or "")[:_DESCRIPTION_CHARS],
                    "required": required,
                }
            )
            if str(parameter.get("default", "")) != "":
                examples[argument] = parameter["default"]
    schema = normalise_parameters(entries)
    for argument, value in examples.items():
        schema["properties"][argument]["examples"] = [value]
    return Tool(name=name, description=description, parameters=schema)


class _ToolCatalog:
    """Tool definition files under ToolBench's `toolenv/tools`, read on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[tuple[str, str], Mapping[str, Any] | None] = {}

    def tool(self, category: Any, tool: str) -> Mapping[str, Any] | None:
        """The definition of the tool standardised as `tool` (in `category` when known), or None."""
        key = (category if isinstance(category, str) else "", tool)
        if key not in self._files:
            candidates = [self.root / key[0] / f"{tool}.json"] if key[0] else []
            candidates += sorted(self.root.glob(f"*/{tool}.json"))
            self._files[key] = next((found for found in map(_json_object, candidates) if found is not None), None)
        return self._files[key]


def _json_object(file: Path) -> Mapping[str, Any] | None:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, Mapping) else None


def _query(record: Mapping[str, Any], context: _Context, catalog: _ToolCatalog | None) -> Trajectory:
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _Bad("query: missing or empty")
    apis = record.get("api_list")
    if not isinstance(apis, list) or not apis:
        raise _Bad("api_list: missing or empty")
    tools: list[Tool] = []
    overview: dict[str, str | None] = {}
    for index, api in enumerate(apis):
        where = f"api_list[{index}]"
        if not isinstance(api, Mapping) or not isinstance(api.get("tool_name"), str):
            raise _Bad(f"{where}: an API without tool_name")
        tool = _standardize(api["tool_name"])
        definition = catalog.tool(api.get("category_name"), tool) if catalog is not None else None
        if definition is not None:
            tool = str(definition.get("standardized_name") or tool)
        if "required_parameters" not in api and "optional_parameters" not in api:
            api = _documented(api, definition, where)
        tools.append(_api_tool(api, tool, where))
        overview.setdefault(tool, str(definition.get("tool_description") or "") if definition is not None else None)
    query_id = record.get("query_id")
    return Trajectory(
        id=context.id(context.file.stem, query_id if query_id is not None else context.position.replace(" ", "")),
        tools=_unique(tools),
        turns=[Turn(role="system", content=_overview(overview)), Turn(role="user", content=query.strip())],
        metadata=context.metadata(
            ["thought", "calls", "answer"],
            **({"query_id": query_id} if query_id is not None else {}),
            **({"relevant_functions": _relevant(record["relevant APIs"])} if "relevant APIs" in record else {}),
        ),
    )


def _documented(api: Mapping[str, Any], definition: Mapping[str, Any] | None, where: str) -> Mapping[str, Any]:
    """An API named without documentation, documented from its tool's definition file."""
    wanted = _parameter_name(str(api.get("api_name") or ""))
    for entry in (definition.get("api_list") or []) if definition is not None else []:
        if isinstance(entry, Mapping) and _parameter_name(str(entry.get("name") or "")) == wanted:
            return entry
    raise _Bad(
        f"{where}: API {api.get('tool_name')!r} / {api.get('api_name')!r} has no parameters and no tool definition "
        "documents it; pass tools_dir= ToolBench's toolenv/tools"
    )


def _relevant(pairs: Any) -> list[str]:
    """`relevant APIs` (`[[tool, api], ...]`) as function names."""
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in pairs
    ):
        raise _Bad("relevant APIs: expected a list of [tool_name, api_name] pairs")
    return [_function_name(api, _standardize(tool)) for tool, api in pairs]


def _tool_file(record: Mapping[str, Any], context: _Context) -> Trajectory:
    title = record.get("tool_name", record.get("name"))
    if not isinstance(title, str) or not title.strip():
        raise _Bad("tool_name: missing or empty")
    tool = str(record.get("standardized_name") or _standardize(title))
    apis = record.get("api_list")
    if not isinstance(apis, list) or not apis:
        raise _Bad("api_list: missing or empty")
    tools = _unique(_api_tool(api, tool, f"api_list[{i}]") for i, api in enumerate(apis))
    overview = _overview({tool: str(record.get("tool_description") or "")})
    return Trajectory(
        id="/".join([_SOURCE, "tool", context.file.parent.name, tool]),
        tools=tools,
        turns=[Turn(role="system", content=overview)],
        metadata=context.metadata(["query", "thought", "calls", "answer"]),
    )


def _overview(tools: Mapping[str, str | None]) -> str:
    """The system turn of a query or tool: the tools it offers, with their descriptions when known."""
    lines = []
    for number, (tool, description) in enumerate(tools.items(), start=1):
        text = " ".join((description or "").split())[:512]
        lines.append(f"{number}.{tool}: {text}" if text else f"{number}.{tool}")
    return "You can use the functions of these tools:\n" + "\n".join(lines)


# ---- small helpers ------------------------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _Bad(f"{where}: content is a {type(value).__name__}, expected text")


def _query_text(text: str) -> str:
    """The query of ToolBench's first user message (`\\n<query>\\nBegin!\\n`)."""
    return text.strip().removesuffix("Begin!").strip()


def _arguments(value: Any, where: str) -> dict[str, Any]:
    """A call's arguments: an object, or its JSON text (control characters allowed in strings, as ToolBench's
    environment allows them; empty means no arguments)."""
    if isinstance(value, Mapping):
        return dict(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if not isinstance(value, str):
        raise _Bad(f"{where}: arguments are a {type(value).__name__}, expected a JSON object")
    try:
        parsed = json.loads(value, strict=False)
    except json.JSONDecodeError as error:
        raise _Bad(f"{where}: Action Input is not JSON ({error.msg} at column {error.colno}): {value[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise _Bad(f"{where}: Action Input is a JSON {type(parsed).__name__}, expected an object: {value[:80]!r}")
    return parsed


def _unique(tools: Any) -> list[Tool]:
    """The tools, Nones dropped, the first of each name kept."""
    seen: dict[str, Tool] = {}
    for tool in tools:
        if tool is not None:
            seen.setdefault(tool.name, tool)
    return list(seen.values())


def _leading_number(stem: str) -> int | None:
    match = re.match(r"(\d+)_", stem)
    return int(match.group(1)) if match else None
