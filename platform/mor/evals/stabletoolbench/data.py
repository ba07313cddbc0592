"""StableToolBench data: the six solvable query groups, each query's OpenAI functions and their API routes.

A data directory is laid out as `../shared/benchmarks/stabletoolbench` holds it:
`solvable_queries/test_instruction/<group>.json` (the queries, each with the raw docs of its APIs),
`solvable_queries/test_query_ids/<group>.json` (the ids of the test set), and
`derived/<group>_functions.jsonl` (per query, the function list the benchmark's environment offers, named
`<api>_for_<tool>` plus `Finish`, and the category/tool/api route of every function for the virtual API server).
Files are read in place; nothing is copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FINISH",
    "GROUPS",
    "ITEM_COUNTS",
    "SUITE",
    "ApiCatalog",
    "ApiDoc",
    "ApiRoute",
    "StbDataError",
    "StbQuery",
    "check_group",
    "load_catalog",
    "load_group",
    "stabletoolbench_dir",
]

SUITE = "stabletoolbench"
GROUPS: tuple[str, ...] = (
    "G1_instruction",
    "G1_category",
    "G1_tool",
    "G2_instruction",
    "G2_category",
    "G3_instruction",
)
# Queries per group in the solvable test set (765 in all).
ITEM_COUNTS: dict[str, int] = {
    "G1_instruction": 163,
    "G1_category": 153,
    "G1_tool": 158,
    "G2_instruction": 106,
    "G2_category": 124,
    "G3_instruction": 61,
}
FINISH = "Finish"

_QUERIES = Path("solvable_queries") / "test_instruction"
_IDS = Path("solvable_queries") / "test_query_ids"
_DERIVED = Path("derived")


class StbDataError(ValueError):
    """StableToolBench data that cannot be found or read; the message names the path, the problem and a fix."""


@dataclass(frozen=True)
class ApiRoute:
    """Where a function call goes on the virtual API server: standardised category, tool and API names."""

    category: str
    tool: str
    api: str

    @property
    def key(self) -> str:
        """`category/tool/api`, the route as one string."""
        return f"{self.category}/{self.tool}/{self.api}"


@dataclass(frozen=True)
class ApiDoc:
    """What the benchmark documents about one API: names, description, parameters and a template response.

    The simulator of the virtual API server is prompted with it.
    """

    route: ApiRoute
    function: str
    tool_title: str
    api_title: str
    description: str
    method: str
    required_parameters: list[dict[str, Any]] = field(default_factory=list)
    optional_parameters: list[dict[str, Any]] = field(default_factory=list)
    template_response: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for prompts and JSON output)."""
        return {
            "category": self.route.category,
            "tool": self.tool_title,
            "api": self.api_title,
            "function": self.function,
            "description": self.description,
            "method": self.method,
            "required_parameters": self.required_parameters,
            "optional_parameters": self.optional_parameters,
            "template_response": self.template_response,
        }


@dataclass(frozen=True)
class StbQuery:
    """One solvable query: the user's request, the functions offered, and the route and doc of each function."""

    id: str
    group: str
    query: str
    functions: list[dict[str, Any]]
    routes: dict[str, ApiRoute]
    docs: dict[str, ApiDoc]
    relevant_apis: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The functions as an OpenAI `tools` list."""
        return [{"type": "function", "function": function} for function in self.functions]

    @property
    def function_names(self) -> list[str]:
        """Names of the offered functions, `Finish` included."""
        return [function["name"] for function in self.functions]


class ApiCatalog(Mapping[str, ApiDoc]):
    """API docs by route key (`category/tool/api`), for the virtual API server."""

    def __init__(self, docs: Iterable[ApiDoc] = ()) -> None:
        self._docs: dict[str, ApiDoc] = {}
        for doc in docs:
            self._docs.setdefault(doc.route.key, doc)

    @classmethod
    def from_queries(cls, queries: Iterable[StbQuery]) -> ApiCatalog:
        """The docs of every API the queries offer."""
        return cls(doc for query in queries for doc in query.docs.values())

    def find(self, route: ApiRoute) -> ApiDoc | None:
        """The doc of `route`, or None when the catalog does not know it."""
        return self._docs.get(route.key)

    def __getitem__(self, key: str) -> ApiDoc:
        return self._docs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


def check_group(group: str) -> str:
    """Return the group name (`stabletoolbench/` prefix removed) if it is a solvable group, else raise."""
    name = group.removeprefix(f"{SUITE}/")
    if name not in GROUPS:
        raise StbDataError(f"group: got {group!r}; must be one of {', '.join(GROUPS)}; e.g. {SUITE}/G1_instruction")
    return name


def stabletoolbench_dir(data_dir: Path) -> Path:
    """The StableToolBench directory: `data_dir/stabletoolbench`, or `data_dir` itself if it holds the files."""
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir / SUITE, data_dir):
        if (candidate / _QUERIES).is_dir() and (candidate / _DERIVED).is_dir():
            return candidate
    raise StbDataError(
        f"data dir: {str(data_dir)!r} holds no {SUITE}/{_QUERIES}/ and {SUITE}/{_DERIVED}/; give the directory "
        f"that holds {SUITE}/ (e.g. --data-dir ../shared/benchmarks or MOR_BENCHMARKS_DIR); to download it, see "
        "'Benchmark data' in README.md"
    )


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise StbDataError(f"{path}: no such file; the StableToolBench data is incomplete, re-download it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StbDataError(f"{path}: not JSON ({error.msg} at line {error.lineno}); re-download the data") from None


def _read_derived(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise StbDataError(
            f"{path}: no such file; derived/<group>_functions.jsonl is built from the queries, re-download the data"
        )
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise StbDataError(f"{path}:{number}: not JSON ({error.msg}); the file must be JSON Lines") from None
            missing = [key for key in ("query_id", "functions", "server_routing") if key not in row]
            if missing:
                raise StbDataError(f"{path}:{number}: missing {', '.join(missing)}; re-download the derived data")
            rows.append(row)
    return rows


def _docs(
    raw_query: Mapping[str, Any], derived: Mapping[str, Any], where: str
) -> tuple[dict[str, ApiRoute], dict[str, ApiDoc]]:
    """Routes and docs by function name; the derived routing lists the query's APIs in `api_list` order."""
    api_list: Sequence[Mapping[str, Any]] = raw_query.get("api_list") or []
    routing: Sequence[Mapping[str, Any]] = derived["server_routing"]
    if len(api_list) != len(routing):
        raise StbDataError(
            f"{where}: {len(api_list)} APIs in api_list but {len(routing)} routes in the derived data; "
            "the query and derived files come from different releases, re-download both"
        )
    descriptions = {function["name"]: function.get("description", "") for function in derived["functions"]}
    routes: dict[str, ApiRoute] = {}
    docs: dict[str, ApiDoc] = {}
    for api, entry in zip(api_list, routing, strict=True):
        route = ApiRoute(category=entry["category"], tool=entry["tool_name"], api=entry["api_name"])
        name = entry["function"]
        if name in routes:
            # Names are cut to their last 64 characters, so a few queries offer two APIs under one name; the
            # benchmark's environment calls the first of them, and so do we.
            continue
        routes[name] = route
        docs[name] = ApiDoc(
            route=route,
            function=name,
            tool_title=str(api.get("tool_name", route.tool)),
            api_title=str(api.get("api_name", route.api)),
            description=str(api.get("api_description") or descriptions.get(name, "")),
            method=str(api.get("method", "GET")),
            required_parameters=list(api.get("required_parameters") or []),
            optional_parameters=list(api.get("optional_parameters") or []),
            template_response=api.get("template_response"),
        )
    return routes, docs


def load_group(group: str, data_dir: Path) -> list[StbQuery]:
    """The queries of one solvable group, in the order of its query file, each with functions, routes and docs.

    `data_dir` is the directory holding `stabletoolbench/` (or the stabletoolbench directory itself).
    """
    group = check_group(group)
    root = stabletoolbench_dir(data_dir)
    query_path = root / _QUERIES / f"{group}.json"
    raw_queries = _read_json(query_path)
    if not isinstance(raw_queries, list):
        raise StbDataError(f"{query_path}: expected a list of queries, got {type(raw_queries).__name__}")
    test_ids_path = root / _IDS / f"{group}.json"
    test_ids = {str(key) for key in _read_json(test_ids_path)} if test_ids_path.is_file() else None
    derived_path = root / _DERIVED / f"{group}_functions.jsonl"
    derived = {str(row["query_id"]): row for row in _read_derived(derived_path)}
    queries: list[StbQuery] = []
    for raw in raw_queries:
        query_id = str(raw.get("query_id"))
        if test_ids is not None and query_id not in test_ids:
            continue
        row = derived.get(query_id)
        if row is None:
            raise StbDataError(
                f"{derived_path}: no functions for query {query_id} of {query_path.name}; "
                "the query and derived files come from different releases, re-download both"
            )
        routes, docs = _docs(raw, row, f"{derived_path.name}: query {query_id}")
        queries.append(
            StbQuery(
                id=query_id,
                group=group,
                query=str(raw.get("query", "")),
                functions=list(row["functions"]),
                routes=routes,
                docs=docs,
                relevant_apis=[(str(tool), str(api)) for tool, api in raw.get("relevant APIs") or []],
            )
        )
    return queries


def load_catalog(data_dir: Path, groups: Sequence[str] = GROUPS) -> ApiCatalog:
    """The docs of every API offered by the queries of `groups` (all six by default)."""
    return ApiCatalog.from_queries(query for group in groups for query in load_group(group, data_dir))
