"""Loading the six solvable groups, their functions, routes and API docs from the data read in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.evals.stabletoolbench import (
    FINISH,
    GROUPS,
    ITEM_COUNTS,
    ApiRoute,
    StbDataError,
    StbQuery,
    check_group,
    load_catalog,
    load_group,
    stabletoolbench_dir,
)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_loads_with_its_item_count(benchmarks_dir: Path, group: str) -> None:
    queries = load_group(group, benchmarks_dir)
    assert len(queries) == ITEM_COUNTS[group]
    assert len({query.id for query in queries}) == len(queries)
    for query in queries:
        assert query.group == group and query.query
        assert query.functions[-1]["name"] == FINISH
        finish = query.functions[-1]["parameters"]["properties"]["return_type"]
        assert finish["enum"] == ["give_answer", "give_up_and_restart"]
        offered = set(query.function_names[:-1])
        assert offered == set(query.routes) == set(query.docs)
        assert all(name.endswith("_for_" + route.tool) or len(name) == 64 for name, route in query.routes.items())


def test_the_test_set_has_765_queries() -> None:
    assert sum(ITEM_COUNTS.values()) == 765
    assert tuple(ITEM_COUNTS) == GROUPS


def test_a_query_has_its_routes_docs_and_tools(messi: StbQuery) -> None:
    assert messi.query.startswith("I'm a football enthusiast")
    route = messi.routes["transfermarkt_search_for_theclique"]
    assert route == ApiRoute("Data", "theclique", "transfermarkt_search")
    assert route.key == "Data/theclique/transfermarkt_search"
    doc = messi.docs["transfermarkt_search_for_theclique"]
    assert (doc.tool_title, doc.api_title, doc.method) == ("TheClique", "Transfermarkt search", "GET")
    assert doc.description == "Search by name"
    assert doc.required_parameters[0]["name"] == "name"
    assert set(doc.template_response) == {"Clubs", "Managers & officials", "Players", "Referees"}
    assert messi.relevant_apis == [("TheClique", "Transfermarkt search"), ("TheClique", "Transfermarkt details")]
    assert messi.tools[0] == {"type": "function", "function": messi.functions[0]}
    assert len(messi.tools) == 11


def test_a_name_shared_by_two_apis_routes_to_the_first(g1_instruction: list[StbQuery]) -> None:
    # Function names are cut to 64 characters, so query 27847 offers three APIs as one name each time.
    query = next(q for q in g1_instruction if q.id == "27847")
    name = "e_vip_btts_goal_goal_for_get_168predict_vip_football_predictions"
    assert query.function_names.count(name) == 3
    assert query.routes[name].api == "tomorrow_sure_vip_btts_goal_goal"


def test_group_names_are_checked() -> None:
    assert check_group("stabletoolbench/G2_category") == "G2_category"
    assert check_group("G3_instruction") == "G3_instruction"
    with pytest.raises(StbDataError, match=r"group: got 'G3_tool'; must be one of G1_instruction"):
        check_group("G3_tool")


def test_the_data_dir_may_be_the_stabletoolbench_dir_itself(benchmarks_dir: Path) -> None:
    inner = benchmarks_dir / "stabletoolbench"
    assert stabletoolbench_dir(benchmarks_dir) == inner
    assert stabletoolbench_dir(inner) == inner
    assert len(load_group("G3_instruction", inner)) == 61


def test_a_data_dir_without_the_files_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StbDataError, match=r"holds no stabletoolbench/solvable_queries/test_instruction.*--data-dir"):
        load_group("G1_tool", tmp_path)


def _tiny_layout(root: Path, *, routes: int) -> Path:
    base = root / "stabletoolbench"
    (base / "solvable_queries" / "test_instruction").mkdir(parents=True)
    (base / "derived").mkdir()
    api = {
        "category_name": "Data",
        "tool_name": "T",
        "api_name": "A",
        "api_description": "d",
        "method": "GET",
        "required_parameters": [],
        "optional_parameters": [],
        "template_response": {"x": "str"},
    }
    query = {"query_id": 1, "query": "q?", "relevant APIs": [["T", "A"]], "api_list": [api]}
    (base / "solvable_queries" / "test_instruction" / "G1_tool.json").write_text(json.dumps([query]))
    routing = [{"function": "a_for_t", "category": "Data", "tool_name": "t", "api_name": "a"}] * routes
    functions = [{"name": "a_for_t", "parameters": {}}, {"name": "Finish", "parameters": {}}]
    row = {"query_id": 1, "group": "G1_tool", "query": "q?", "functions": functions, "server_routing": routing}
    (base / "derived" / "G1_tool_functions.jsonl").write_text(json.dumps(row) + "\n")
    return root


def test_a_small_layout_loads_without_test_ids(tmp_path: Path) -> None:
    [query] = load_group("G1_tool", _tiny_layout(tmp_path, routes=1))
    assert query.id == "1" and query.routes == {"a_for_t": ApiRoute("Data", "t", "a")}
    assert query.docs["a_for_t"].template_response == {"x": "str"}


def test_mismatched_query_and_derived_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StbDataError, match=r"query 1: 1 APIs in api_list but 2 routes .* re-download both"):
        load_group("G1_tool", _tiny_layout(tmp_path, routes=2))


def test_a_missing_derived_file_is_named(tmp_path: Path) -> None:
    root = _tiny_layout(tmp_path, routes=1)
    (root / "stabletoolbench" / "derived" / "G1_tool_functions.jsonl").unlink()
    with pytest.raises(StbDataError, match=r"G1_tool_functions.jsonl: no such file"):
        load_group("G1_tool", root)


def test_the_catalog_holds_every_callable_api(benchmarks_dir: Path) -> None:
    catalog = load_catalog(benchmarks_dir)
    # 2490 routes in the derived data, of which 9 are shadowed by an earlier API with the same cut name.
    assert len(catalog) == 2481
    doc = catalog.find(ApiRoute("Data", "theclique", "transfermarkt_details"))
    assert doc is not None and doc.function == "transfermarkt_details_for_theclique"
    assert catalog.find(ApiRoute("Data", "theclique", "nope")) is None
