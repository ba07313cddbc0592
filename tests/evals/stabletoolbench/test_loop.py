"""The agent loop: CoT chains and DFSDT search over a scripted target, with the virtual API server for real."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mor.evals.stabletoolbench import (
    ApiCatalog,
    ApiRoute,
    End,
    LoopConfig,
    ResponseCache,
    StbQuery,
    VirtualApiClient,
    VirtualApiServer,
    run_cot,
    run_dfsdt,
    run_episode,
)
from mor.evals.target import TargetCall, TargetReply

from ._fakes import ScriptedTarget, call, finish, give_up

SEARCH = "transfermarkt_search_for_theclique"
DETAILS = "transfermarkt_details_for_theclique"
PLAYERS = {"Players": [{"name": "Lionel Messi", "slug": "lionel-messi"}]}


@pytest.fixture
def server(tmp_path: Path, messi_catalog: ApiCatalog) -> Iterator[VirtualApiServer]:
    cache = ResponseCache(tmp_path)
    cache.put(
        ApiRoute("Data", "theclique", "transfermarkt_search"), {"name": "messi"}, {"error": "", "response": PLAYERS}
    )
    with VirtualApiServer(cache, catalog=messi_catalog) as running:
        yield running


@pytest.fixture
def client(server: VirtualApiServer) -> Iterator[VirtualApiClient]:
    with VirtualApiClient(server.url) as api:
        yield api


def search(thought: str | None = None) -> TargetReply:
    return TargetReply(calls=[call(SEARCH, name="messi")], thought=thought)


def test_cot_runs_calls_until_finish(messi: StbQuery, client: VirtualApiClient) -> None:
    target = ScriptedTarget(
        [
            TargetReply(
                calls=[call(SEARCH, name="messi")], thought="Search first.", latency_s=0.25, usage={"total_tokens": 7}
            ),
            TargetReply(
                calls=[call("Finish", return_type="give_answer", final_answer="Messi's slug is lionel-messi.")],
                latency_s=0.5,
                usage={"total_tokens": 5},
            ),
        ]
    )
    episode = run_cot(target, messi, client)
    assert episode.end == End.ANSWER and episode.finish_type == "give_answer"
    assert episode.answer == "Messi's slug is lionel-messi."
    assert [(s.name, s.kind, s.source, s.error) for s in episode.steps] == [
        (SEARCH, "api", "cache", ""),
        ("Finish", "finish", "", ""),
    ]
    assert episode.steps[0].observation == json.dumps({"error": "", "response": PLAYERS})
    assert episode.queries == 2 and episode.target_latency_s == 0.75 and episode.usage == {"total_tokens": 12}
    first, second = target.requests
    assert [m["role"] for m in first] == ["system", "user"] and first[1]["content"] == messi.query
    assert 'call Finish with return_type "give_answer"' in first[0]["content"]
    assert second[2] == {
        "role": "assistant",
        "content": "Search first.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": SEARCH, "arguments": '{"name": "messi"}'}}
        ],
    }
    assert second[3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": SEARCH,
        "content": episode.steps[0].observation,
    }
    assert target.tools_seen[0] == messi.tools
    assert episode.to_dict()["end"] == "answer" and json.dumps(episode.to_dict())


def test_cot_ends_on_give_up(messi: StbQuery, client: VirtualApiClient) -> None:
    episode = run_cot(ScriptedTarget([search(), give_up()]), messi, client)
    assert (episode.end, episode.finish_type, episode.answer, episode.queries) == (End.GAVE_UP, "give_up", None, 2)


def test_cot_stops_at_the_step_limit(messi: StbQuery, client: VirtualApiClient, server: VirtualApiServer) -> None:
    episode = run_cot(ScriptedTarget([search()] * 3), messi, client, LoopConfig(max_steps=3))
    assert (episode.end, episode.queries, len(episode.steps)) == (End.STEP_LIMIT, 3, 3)
    assert server.stats.cache_hits == 3


def test_cot_ends_on_an_unusable_turn_naming_the_failing_role(messi: StbQuery, client: VirtualApiClient) -> None:
    failed = TargetReply(failure="executor output is not a call", failing_role="executor")
    episode = run_cot(ScriptedTarget([search(), failed]), messi, client)
    assert (episode.end, episode.failing_role, episode.failure) == (
        End.NO_FINISH,
        "executor",
        "executor output is not a call",
    )
    empty = run_cot(ScriptedTarget([TargetReply()]), messi, client)
    assert empty.end == End.NO_FINISH
    assert empty.failure == "the target replied with neither a function call nor an answer"


def test_plain_content_is_the_answer_unless_configured_otherwise(messi: StbQuery, client: VirtualApiClient) -> None:
    episode = run_cot(ScriptedTarget([search(), TargetReply(content="Messi: lionel-messi")]), messi, client)
    assert (episode.end, episode.finish_type, episode.answer) == (End.ANSWER, "content", "Messi: lionel-messi")
    target = ScriptedTarget([TargetReply(content="Let me think."), finish("done")])
    episode = run_cot(target, messi, client, LoopConfig(content_as_answer=False))
    assert (episode.end, episode.answer, episode.queries) == (End.ANSWER, "done", 2)
    assert target.requests[1][-1] == {"role": "assistant", "content": "Let me think."}


def test_invalid_calls_come_back_as_error_observations(messi: StbQuery, client: VirtualApiClient) -> None:
    bad_json = TargetCall(name=SEARCH, arguments={}, raw_arguments="{bad")
    target = ScriptedTarget(
        [
            TargetReply(
                calls=[
                    call("made_up_for_nobody", a=1),
                    bad_json,
                    call(DETAILS, type_s="players", other="", id_talent="28003", part_slug="x"),
                ]
            ),
            TargetReply(calls=[call("Finish", return_type="maybe")]),
            TargetReply(calls=[call("Finish", return_type="give_answer")]),
            finish("done"),
        ]
    )
    episode = run_cot(target, messi, client)
    assert episode.end == End.ANSWER and episode.queries == 4
    kinds = [(s.name, s.kind) for s in episode.steps]
    assert kinds == [
        ("made_up_for_nobody", "invalid"),
        (SEARCH, "invalid"),
        (DETAILS, "api"),
        ("Finish", "invalid"),
        ("Finish", "invalid"),
        ("Finish", "finish"),
    ]
    errors = [s.error for s in episode.steps]
    assert errors[0] == "no such function: made_up_for_nobody; call one of the offered functions"
    assert errors[1] == "arguments of transfermarkt_search_for_theclique are not valid JSON: '{bad'"
    assert errors[2].startswith(
        "not cached: the response cache holds no response of Data/theclique/transfermarkt_details"
    )
    assert errors[3] == "Finish: return_type must be give_answer or give_up_and_restart, got 'maybe'"
    assert errors[4] == "Finish: return_type give_answer needs a final_answer string"
    assistant = target.requests[1][2]
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]][:2] == ['{"a": 1}', "{bad"]
    assert [m["tool_call_id"] for m in target.requests[1][3:6]] == ["call_1", "call_2", "call_3"]


def test_calls_after_a_finish_are_not_run(messi: StbQuery, client: VirtualApiClient, server: VirtualApiServer) -> None:
    reply = TargetReply(
        calls=[call("Finish", return_type="give_answer", final_answer="early"), call(SEARCH, name="messi")]
    )
    episode = run_cot(ScriptedTarget([reply]), messi, client)
    assert (episode.answer, [s.name for s in episode.steps]) == ("early", ["Finish"])
    assert server.stats.cache_hits == 0
    assert len(episode.messages[-2]["tool_calls"]) == 1  # the transcript holds only the calls that ran


def test_observations_are_cut_to_the_configured_length(messi: StbQuery, client: VirtualApiClient) -> None:
    episode = run_cot(ScriptedTarget([search(), finish("x")]), messi, client, LoopConfig(max_observation_chars=40))
    observation = episode.steps[0].observation
    assert len(observation) == 43 and observation.endswith("...")


def _dfs_script(replies: Sequence[TargetReply]) -> ScriptedTarget:
    return ScriptedTarget(list(replies))


def test_dfsdt_backtracks_after_a_give_up_and_tries_a_different_action(
    messi: StbQuery, client: VirtualApiClient
) -> None:
    details = TargetReply(
        calls=[call(DETAILS, type_s="players", other="", id_talent="28003", part_slug="lionel-messi")]
    )
    target = _dfs_script([search(), give_up(), details, finish("Found via details.")])
    episode = run_dfsdt(target, messi, client)
    assert (episode.end, episode.answer, episode.queries) == (End.ANSWER, "Found via details.", 4)
    assert [s.name for s in episode.steps] == [DETAILS, "Finish"]  # the path to the answer only
    assert episode.search == {"queries": 4, "expanded": 3, "dead_ends/gave_up": 1}
    # After the give-up two levels up: the root is asked again, told what was already tried from it.
    retry = target.requests[2]
    assert [m["role"] for m in retry] == ["system", "user", "user"]
    assert "tried before" in retry[2]["content"] and f'"name": "{SEARCH}"' in retry[2]["content"]
    assert "Lionel Messi" in retry[2]["content"]  # with what the tried call returned
    assert [m["role"] for m in target.requests[3]] == ["system", "user", "assistant", "tool"]  # hint not kept


def test_dfsdt_tries_a_sibling_after_an_unusable_turn(messi: StbQuery, client: VirtualApiClient) -> None:
    failed = TargetReply(failure="reasoner named no role", failing_role="reasoner")
    target = _dfs_script([search(), failed, finish("second try")])
    episode = run_dfsdt(target, messi, client)
    assert (episode.end, episode.answer, episode.queries) == (End.ANSWER, "second try", 3)
    assert [s.name for s in episode.steps] == [SEARCH, "Finish"]
    assert episode.failing_role is None  # the answer's path had no failure
    assert "reasoner named no role" in target.requests[2][-1]["content"]


def test_a_give_up_at_the_first_step_ends_the_search_unless_backtracking_is_shorter(
    messi: StbQuery, client: VirtualApiClient
) -> None:
    episode = run_dfsdt(_dfs_script([give_up()]), messi, client)
    assert (episode.end, episode.queries, episode.finish_type) == (End.GAVE_UP, 1, "give_up")
    episode = run_dfsdt(_dfs_script([give_up(), finish("ok")]), messi, client, LoopConfig(give_up_backtrack=1))
    assert (episode.end, episode.queries) == (End.ANSWER, 2)


def test_dfsdt_explores_the_whole_tree_within_the_step_limit(messi: StbQuery, client: VirtualApiClient) -> None:
    target = ScriptedTarget(lambda messages, tools: search())
    episode = run_dfsdt(target, messi, client, LoopConfig(max_steps=2, beam_width=2))
    # Root: 2 children; each child: 2 children at the step limit. 6 target calls, 4 dead ends.
    assert (episode.end, episode.queries) == (End.STEP_LIMIT, 6)
    assert episode.search == {"queries": 6, "expanded": 3, "dead_ends/step_limit": 4}
    assert len(episode.steps) == 2


def test_dfsdt_stops_when_the_budget_is_spent(messi: StbQuery, client: VirtualApiClient) -> None:
    def script(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> TargetReply:
        return TargetReply(failure="stuck", failing_role="executor") if len(messages) > 6 else search()

    episode = run_dfsdt(ScriptedTarget(script), messi, client, LoopConfig(max_queries=5))
    assert (episode.end, episode.queries) == (End.BUDGET_EXHAUSTED, 5)
    assert episode.failing_role == "executor"


def test_run_episode_dispatches_and_checks_the_mode(messi: StbQuery, client: VirtualApiClient) -> None:
    assert run_episode(ScriptedTarget([finish("a")]), messi, client, mode="dfsdt").mode == "dfsdt"
    assert run_episode(ScriptedTarget([finish("a")]), messi, client).mode == "cot"
    with pytest.raises(ValueError, match=r"mode: got 'bfs', must be one of cot, dfsdt"):
        run_episode(ScriptedTarget([]), messi, client, mode="bfs")  # type: ignore[arg-type]


def test_loop_config_lists_every_problem() -> None:
    with pytest.raises(ValueError, match=r"max_steps: got 0, must be ≥ 1; e.g. max_steps=12; beam_width: got 0"):
        LoopConfig(max_steps=0, beam_width=0)
