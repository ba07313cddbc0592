"""The ToolBench reader, on the samples in ../shared/datasets/toolbench (read in place, never copied) and on small
malformed records written here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.toolbench import read_toolbench
from mor_testing import shared_dataset

ANSWER_57 = "data_example/answer/G1_answer/57_ChatGPT_DFS_woFilter_w2.json"
RAW_82217 = "data/toolllama/raw_answer/G1_demo/82217_ChatGPT_DFS_woFilter_w2.json"
PROCESSED = "data/toolllama/processed_answer/G1_demo_DFS_woFilter_w2.json"
QUOTES_QUERY = (
    "I'm planning a surprise party for my best friend, and I want to include meaningful quotes in the decorations. "
    "Can you provide me with random love, success, and motivation quotes? It would be great to have quotes that can "
    "celebrate love, success, and inspire everyone at the party. Thank you so much for your help!"
)
QUOTE_FUNCTIONS = ["love_quote_for_olato_quotes", "success_quote_for_olato_quotes", "motivation_quote_for_olato_quotes"]


@pytest.fixture(scope="module")
def toolbench() -> Path:
    return shared_dataset("toolbench")


def trajectories(path: Path, **options: Any) -> list[Trajectory]:
    items = list(read_toolbench(path, **options))
    assert all(isinstance(item, Trajectory) for item in items), [str(i) for i in items if isinstance(i, Malformed)]
    return items  # type: ignore[return-value]


def test_an_answer_tree_is_read_along_the_chosen_chain(toolbench: Path) -> None:
    [trajectory] = trajectories(toolbench / ANSWER_57)
    assert trajectory.id == "toolbench/answer/G1/57_ChatGPT_DFS_woFilter_w2"
    assert trajectory.metadata.source == "toolbench"
    assert trajectory.metadata.category == "G1"
    assert trajectory.metadata.origin == f"{toolbench / ANSWER_57}:file"
    assert trajectory.metadata.query_id == 57
    assert trajectory.metadata.give_up is False
    assert trajectory.metadata.missing == ["thought"]  # the first two calls came without a thought
    assert trajectory.query == (
        "I'm interested in learning more about the latest products in the market. Can you perform a product search "
        "for the latest iPhone 14? Additionally, I would like to perform a Google search for news articles related "
        "to the iPhone 14. Thank you!"
    )
    # the winning branch: two calls, then (after DFSDT's "not the first time" prompt) search_b, then Finish
    assert [(call.name, call.arguments, call.id) for call in trajectory.calls] == [
        ("products_for_seo_api", {"query": "latest iPhone 14"}, "call_1"),
        ("news_for_seo_api", {"query": "iPhone 14"}, "call_2"),
        ("search_b_for_seo_api", {"query": "iPhone 14 news"}, "call_3"),
    ]
    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        *["reasoner", "executor", "observation"] * 2,
        "user",
        *["reasoner", "executor", "observation"],
        "reasoner",
        "summarizer",
    ]
    turns = trajectory.turns
    assert turns[0].content.startswith("You are AutoGPT, you can use many tools(functions)")
    assert turns[2].thought is None and turns[2].next_role == "executor"
    assert turns[8].content.startswith("This is not the first time you try this task")
    assert turns[9].thought.startswith("Based on the current state, the previous action that was tried")
    assert [turn.call_id for turn in turns if turn.role == "observation"] == ["call_1", "call_2", "call_3"]
    assert turns[4].content.startswith('{"error": "", "response": "{\'products\': [{\'link\'')
    # the thought before Finish was an assistant message of its own: it becomes the hand-over to the summarizer
    assert turns[-2].thought.startswith("I apologize, but it seems that I am unable to retrieve any news articles")
    assert turns[-2].next_role == "summarizer"
    assert trajectory.answer.startswith("I found a phone case for the latest iPhone 14 called 'LEOMAKRON")
    assert trajectory.answer.endswith("Is there anything else I can help you with?")
    # the functions offered, Finish left out (the summarizer turn replaces it), example values kept as examples
    assert len(trajectory.tools) == 10 and trajectory.tool("Finish") is None
    assert trajectory.tool("search_b_for_seo_api").parameters == {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "", "examples": ["q=coffee+shop"]}},
        "required": ["query"],
    }


def test_every_sample_answer_reads_with_its_category_and_answer(toolbench: Path) -> None:
    items = trajectories(toolbench / "data_example" / "answer")
    assert [t.id.rsplit("/", 1)[-1].split("_")[0] for t in items] == ["10", "11", "57", "102", "21"]
    assert [t.metadata.category for t in items] == ["G1", "G1", "G1", "G2", "G3"]
    assert all(t.answer and t.turns[-1].role == "summarizer" and not t.metadata.give_up for t in items)
    first = items[0]
    assert [(call.name, call.arguments) for call in first.calls] == [
        ("transitaires_for_transitaires", {}),
        ("transitaire_for_transitaires", {"is_id": "ACT_AGENCE_CALEDONIENNE_DE_TRANSIT"}),  # ToolBench's "is_" rename
    ]
    assert first.answer == (
        "The contact details of the 'Gondrand' customs agency in New Caledonia are as follows:\n\nName: ACT - Agence "
        "Calédonienne de Transit\nPostal Code: 98800\nEmail: sales@act.nc\nPhone Number: +687 27.55.48"
    )


def test_toolllama_steps_collapse_to_the_last_and_match_the_raw_answer(toolbench: Path) -> None:
    [processed] = trajectories(toolbench / PROCESSED)
    [raw] = trajectories(toolbench / RAW_82217)
    assert processed.id == "toolbench/toolllama/G1/G1_demo_DFS_woFilter_w2/3"
    assert processed.metadata.origin.endswith("G1_demo_DFS_woFilter_w2.json:index 3")
    assert processed.query == raw.query == QUOTES_QUERY
    assert [(c.name, c.arguments, c.id) for c in processed.calls] == [
        (n, {}, f"call_{i}") for i, n in enumerate(QUOTE_FUNCTIONS, start=1)
    ]
    # the same chain in both formats: every turn but the system prompt is equal
    assert processed.turns[1:] == raw.turns[1:]
    assert processed.tools == raw.tools and [t.name for t in raw.tools] == QUOTE_FUNCTIONS
    assert processed.metadata.missing == raw.metadata.missing == ["thought"]
    assert raw.metadata.query_id == 82217
    # ToolLLaMA's system prompt loses its API dump (the tools carry it) and keeps its ReAct instructions
    assert "Specifically, you have access" not in processed.turns[0].content
    assert processed.turns[0].content.startswith("You are AutoGPT") and "Action Input:" in processed.turns[0].content
    assert processed.turns[-2].thought.startswith("For your surprise party, here are some meaningful quotes")
    assert processed.answer.startswith("Here are some meaningful quotes that you can include in the decorations")


def test_all_steps_reads_every_toolllama_step(toolbench: Path) -> None:
    steps = trajectories(toolbench / PROCESSED, all_steps=True)
    assert [len(t.calls) for t in steps] == [1, 2, 3, 3]
    assert [t.turns[-1].role for t in steps] == ["executor", "executor", "executor", "summarizer"]
    assert [t.metadata.missing for t in steps] == [["thought", "answer"]] * 3 + [["thought"]]
    assert len({t.id for t in steps}) == 4


def test_queries_become_system_and_user_turns_with_tools(toolbench: Path) -> None:
    demo = trajectories(toolbench / "data" / "query" / "queryG1_demo.json")
    assert [t.metadata.query_id for t in demo] == [36486, 36487, 82217]
    first = demo[0]
    assert first.id == "toolbench/query/G1/queryG1_demo/36486"
    assert [turn.role for turn in first.turns] == ["system", "user"]
    assert first.query.startswith("I need to gather information about all the NFTs owned by my friend's address.")
    assert first.turns[0].content == "You can use the functions of these tools:\n1.nfts_by_address"
    assert first.metadata.missing == ["thought", "calls", "answer"]
    assert first.metadata.origin.endswith("queryG1_demo.json:index 0")
    # RapidAPI docs to JSON Schema as ToolBench's environment offers them: NUMBER -> integer, defaults as examples
    assert [tool.name for tool in first.tools] == [
        "getnfts_byaddress_for_nfts_by_address",
        "getnfts_metadata_for_nfts_by_address",
    ]
    nfts = first.tool("getnfts_byaddress_for_nfts_by_address")
    assert nfts.description == (
        'This is the subfunction for tool "nfts_by_address", you can use this tool.The description of this function '
        'is: "Gets all NFTs currently owned by a given address. Unlimited, results display in 100s."'
    )
    assert nfts.parameters == {
        "type": "object",
        "properties": {
            "owner": {
                "type": "string",
                "description": "Input the address for NFT owner and scrape their NFTs.\n",
                "examples": ["0x8e7644918b3e280fb3b599ca381a4efcb7ade201"],
            },
            "pagekey": {
                "type": "string",
                "description": "To pull subsequent requests. Note: it expires after 10 minutes",
            },
        },
        "required": ["owner"],
    }
    assert first.tool("getnfts_metadata_for_nfts_by_address").properties["tokenid"]["type"] == "integer"
    # a query's tools carry the names (and descriptions) of the answer to it
    [raw] = trajectories(toolbench / RAW_82217)
    assert demo[2].query == raw.query
    assert [(t.name, t.description) for t in demo[2].tools] == [(t.name, t.description) for t in raw.tools]


def test_instruction_queries_count_and_name_their_relevant_functions(toolbench: Path) -> None:
    instruction = toolbench / "data_example" / "instruction"
    counts = {name: len(trajectories(instruction / f"{name}_query.json")) for name in ("G1", "G2", "G3")}
    assert counts == {"G1": 5, "G2": 3, "G3": 2}
    g1 = trajectories(instruction / "G1_query.json")
    assert g1[0].query.startswith("I'm working on a logistics project for my company and need to check the health")
    assert g1[0].metadata.relevant_functions == ["checkhealth_for_squake", "projects_for_squake"]
    assert [t.name for t in g1[0].tools] == ["checkhealth_for_squake", "projects_for_squake"]
    # ToolBench keeps the last 64 characters of a long name (as its answers call them)
    long_names = [t.name for t in g1[4].tools if len(t.name) == 64]
    assert "eo_argentino_result_task_task_id_for_transportistas_de_argentina" in long_names
    g3 = trajectories(instruction / "G3_query.json")
    assert {t.metadata.category for t in g3} == {"G3"}
    assert g3[0].turns[0].content.splitlines()[1:] == [
        "1.investors_exchange_iex_trading",
        "2.the_cocktail_db",
        "3.web_search",
        "4.live_sports_odds",
    ]


def test_tool_definitions_and_tools_dir(toolbench: Path) -> None:
    tools_dir = toolbench / "toolenv" / "tools"
    [definition] = trajectories(tools_dir / "Social" / "olato_quotes.json")
    assert definition.id == "toolbench/tool/Social/olato_quotes"
    assert definition.metadata.missing == ["query", "thought", "calls", "answer"]
    assert [turn.role for turn in definition.turns] == ["system"]
    assert [tool.name for tool in definition.tools] == QUOTE_FUNCTIONS
    love = definition.tool("love_quote_for_olato_quotes")
    assert love.parameters == {
        "type": "object",
        "properties": {"quotes": {"type": "string", "description": "", "examples": ["random quotes"]}},
    }
    assert love.required == []
    # with tools_dir, a query's system turn describes each tool
    demo = trajectories(toolbench / "data" / "query" / "queryG1_demo.json", tools_dir=tools_dir)
    assert demo[2].turns[0].content == (
        "You can use the functions of these tools:\n"
        "1.olato_quotes: Olato Quote APIs gives you random quotes about motivation, sucess and love quotes."
    )
    assert demo[0].turns[0].content.endswith("1.nfts_by_address")  # not in the samples' toolenv: no description


def test_tools_dir_documents_an_api_named_without_parameters(toolbench: Path, tmp_path: Path) -> None:
    query = {
        "query": "Give me a love quote.",
        "query_id": 7,
        "api_list": [{"category_name": "Social", "tool_name": "Olato Quotes", "api_name": "Love Quote"}],
    }
    path = tmp_path / "G1_query.json"
    path.write_text(json.dumps([query]))
    [trajectory] = trajectories(path, tools_dir=toolbench / "toolenv" / "tools")
    assert [tool.name for tool in trajectory.tools] == ["love_quote_for_olato_quotes"]
    assert trajectory.tools[0].properties == {
        "quotes": {"type": "string", "description": "", "examples": ["random quotes"]}
    }
    [report] = read_toolbench(path)
    assert isinstance(report, Malformed)
    assert "'Olato Quotes' / 'Love Quote' has no parameters" in report.reason and "tools_dir" in report.reason


def give_up_copy(toolbench: Path, directory: Path) -> Path:
    """The 82217 answer (written under `directory`) as if its chosen chain had ended in a give-up."""
    record = json.loads((toolbench / RAW_82217).read_text(encoding="utf-8"))
    generation = record["answer_generation"]
    generation["finish_type"] = "give_up"
    finish = generation["train_messages"][-1][-1]
    assert finish["function_call"]["name"] == "Finish"
    finish["function_call"]["arguments"] = json.dumps({"return_type": "give_up_and_restart"})
    finish["content"] = "The quotes APIs keep failing; I will restart."
    path = directory / "G1_answer" / "82217_ChatGPT_DFS_woFilter_w2.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    return path


def test_a_give_up_is_marked_and_kept_or_dropped(toolbench: Path, tmp_path: Path) -> None:
    path = give_up_copy(toolbench, tmp_path)
    [trajectory] = trajectories(path)
    assert trajectory.metadata.give_up is True
    assert trajectory.metadata.category == "G1"
    # the chain's thought-only message and the Finish message's own thought make one hand-over
    assert trajectory.turns[-2].thought.startswith("For your surprise party, here are some meaningful quotes")
    assert trajectory.turns[-2].thought.endswith(
        "Enjoy the celebration!\nThe quotes APIs keep failing; I will restart."
    )
    assert trajectory.turns[-2].next_role == "summarizer"
    assert trajectory.answer == "I give up and restart."
    assert [call.name for call in trajectory.calls] == QUOTE_FUNCTIONS
    assert list(read_toolbench(path, include_give_up=False)) == []
    assert len(trajectories(toolbench / RAW_82217, include_give_up=False)) == 1
    assert len(trajectories(toolbench / "data" / "query", include_give_up=False)) == 3  # queries never give up


def test_the_whole_sample_directory_reads_and_renders(toolbench: Path) -> None:
    items = list(read(name="toolbench", path=toolbench))
    malformed = [item for item in items if isinstance(item, Malformed)]
    read_ok = [item for item in items if isinstance(item, Trajectory)]
    assert Counter(t.metadata.kind for t in read_ok) == {"answer": 6, "toolllama": 1, "query": 13, "tool": 1}
    # the response-examples files (API response schemas) are no trajectories: reported, not raised
    assert sorted(Path(m.file).parent.name for m in malformed) == ["Commerce", "Social"]
    assert all("response_examples" in m.file and "not a ToolBench record" in m.reason for m in malformed)
    assert len({t.id for t in read_ok}) == len(read_ok)
    for trajectory in read_ok:
        text = render_text(trajectory)
        assert text.startswith("<|system|>")
        if trajectory.answer is not None:
            assert trajectory.answer in text


REACT_SYSTEM = (
    "You are AutoGPT.\nSpecifically, you have access to the following APIs: "
    "[{'name': 'add_for_calc', 'description': 'Add two numbers.', 'parameters': {'type': 'object', "
    "'properties': {'a': {'type': 'integer', 'description': ''}, 'b': {'type': 'integer', 'description': ''}}, "
    "'required': ['a', 'b'], 'optional': []}}, {'name': 'Finish', 'description': 'End.', 'parameters': {}}]"
)


def conversation(*steps: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": "Step 1: add",
        "conversations": [
            {"from": "system", "value": REACT_SYSTEM},
            {"from": "user", "value": "\nWhat is 2 + 3?\nBegin!\n"},
            *({"from": role, "value": value} for role, value in steps),
        ],
    }


CALL = ("assistant", '\nThought: I add them.\nAction: add_for_calc\nAction Input: {"a": 2, "b": 3}')
RESULT = ("function", '{"error": "", "response": "5"}')
FINISH = ("assistant", '\nThought: \nAction: Finish\nAction Input: {"return_type": "give_answer", "final_answer": "5"}')


def test_malformed_records_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "G2_toolllama.jsonl"
    lines = [
        json.dumps(conversation(CALL, RESULT, FINISH)),
        '{"conversations": [{"from": "user", "value": "unterminated',
        json.dumps({"conversations": []}),
        json.dumps(conversation(("assistant", "Thought: x\nAction: add_for_calc\nAction Input: {a: 2}"))),
        json.dumps(conversation(("assistant", "I just talk."))),
        json.dumps(conversation(RESULT)),
        json.dumps(conversation(CALL, RESULT, ("assistant", 'Action: Finish\nAction Input: {"return_type": "x"}'))),
        json.dumps({"hello": "world"}),
        json.dumps(conversation(CALL, RESULT, FINISH)),
    ]
    path.write_text("\n".join(lines) + "\n")
    items = list(read_toolbench(path))
    assert [type(item).__name__ for item in items] == ["Trajectory"] + ["Malformed"] * 7 + ["Trajectory"]
    reports = {item.position: item.reason for item in items if isinstance(item, Malformed)}
    assert all(item.source == "toolbench" and item.file == str(path) for item in items if isinstance(item, Malformed))
    assert reports["line 2"].startswith("not valid JSON")
    assert reports["line 3"] == "conversations: missing or empty"
    assert reports["line 4"].startswith("conversations[2]: Action Input is not JSON")
    assert "not 'Thought: ...\\nAction: ...\\nAction Input: ...'" in reports["line 5"]
    assert reports["line 6"] == "conversations[2]: a function response with no call before it"
    assert "Finish return_type: got 'x'" in reports["line 7"]
    assert reports["line 8"].startswith("not a ToolBench record")
    good = items[0]
    assert isinstance(good, Trajectory)
    assert good.id == "toolbench/toolllama/G2/G2_toolllama/line1"
    assert good.metadata.category == "G2" and good.metadata.origin == f"{path}:line 1"
    assert good.query == "What is 2 + 3?"
    assert [(c.name, c.arguments) for c in good.calls] == [("add_for_calc", {"a": 2, "b": 3})]
    assert good.tools[0].parameters == {
        "type": "object",
        "properties": {"a": {"type": "integer", "description": ""}, "b": {"type": "integer", "description": ""}},
        "required": ["a", "b"],
    }
    assert good.answer == "5" and good.metadata.missing == ["thought"]  # the Finish step had no thought
    render_text(good)


def test_malformed_answers_queries_and_tools(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "You are AutoGPT."},
        {"role": "user", "content": "\nAdd 2 and 3.\nBegin!\n"},
        {"role": "assistant", "content": None, "function_call": {"name": "add_for_calc", "arguments": "{'a': 2}"}},
    ]
    cases = {
        "invalid.json": "{not json",
        "not_chosen.json": {"answer_generation": {"valid_data": False, "query": "q", "function": []}},
        "no_chain.json": {"answer_generation": {"valid_data": True, "function": []}},
        "bad_input.json": {"answer_generation": {"valid_data": True, "train_messages": [messages]}},
        "no_query.json": [{"api_list": [{"tool_name": "calc", "api_name": "add"}], "query_id": 1, "query": ""}],
        "no_apis.json": {"tool_name": "Calc", "api_list": []},
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    reports = {Path(item.file).name: item for item in read_toolbench(tmp_path)}
    assert all(isinstance(item, Malformed) for item in reports.values())
    assert reports["invalid.json"].position == "file" and reports["invalid.json"].reason.startswith("not valid JSON")
    assert reports["not_chosen.json"].reason.startswith("answer_generation.valid_data is false")
    assert reports["no_chain.json"].reason.startswith("answer_generation.train_messages: missing or empty")
    assert reports["bad_input.json"].reason.startswith("train_messages[-1][2]: Action Input is not JSON")
    assert (reports["no_query.json"].position, reports["no_query.json"].reason) == (
        "index 0",
        "query: missing or empty",
    )
    assert reports["no_apis.json"].reason == "api_list: missing or empty"
    # a kind named explicitly reads every record as that kind
    [wrong] = read_toolbench(tmp_path / "no_apis.json", kind="answer")
    assert isinstance(wrong, Malformed) and wrong.reason == "answer_generation: missing or not an object"


def test_options_are_checked_when_called(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"kind: got 'xml', must be one of auto, answer, toolllama, query, tool"):
        read_toolbench(tmp_path, kind="xml")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="names no data file"):
        read_toolbench(tmp_path / "absent")
    (tmp_path / "q.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="tools_dir: .* is not a directory"):
        read_toolbench(tmp_path / "q.json", tools_dir=tmp_path / "absent")
