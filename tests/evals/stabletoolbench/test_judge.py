"""Judging: the majority rule, the LLM judge over a real HTTP endpoint, and the labelled rule-based judge."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mor.evals.stabletoolbench import (
    AnswerStatus,
    JudgeInput,
    Judgement,
    LlmEndpoint,
    LlmJudge,
    RuleBasedJudge,
    Step,
    combine,
)

from ._fakes import FakeChatServer, Reply, judge_message

S, U, N = AnswerStatus.SOLVED, AnswerStatus.UNSOLVED, AnswerStatus.UNSURE
OK_STEP = Step(
    "transfermarkt_search_for_theclique",
    {"name": "messi"},
    json.dumps({"error": "", "response": {"Players": [{"name": "Lionel Messi", "club": "Inter Miami"}]}}),
)
FAILED_STEP = Step(
    "transfermarkt_search_for_theclique",
    {"name": "messi"},
    json.dumps({"error": "not cached: ...", "response": ""}),
    error="not cached: ...",
)
QUERY = "Which club does Lionel Messi play for?"


def answered(
    answer: str | None, steps: list[Step] | None = None, finish_type: str | None = "give_answer"
) -> JudgeInput:
    return JudgeInput(QUERY, answer, finish_type, steps if steps is not None else [OK_STEP])


@pytest.mark.parametrize(
    ("statuses", "passed", "status", "score"),
    [
        ((S, S, U), True, S, 2 / 3),
        ((S, U, U), False, U, 1 / 3),
        ((S, U), True, S, 0.5),  # a tie passes
        ((S, U, N), True, S, 0.5),
        ((S, N, N), True, S, 2 / 3),
        ((U, N, N), False, N, 1 / 3),
        ((N, N, N), False, N, 0.5),  # unsure alone never passes
        ((U, U, U), False, U, 0.0),
        ((S,), True, S, 1.0),
    ],
)
def test_majority_rule(statuses: tuple[AnswerStatus, ...], passed: bool, status: AnswerStatus, score: float) -> None:
    verdict = combine("llm", [Judgement(s) for s in statuses])
    assert (verdict.passed, verdict.status, verdict.kind) == (passed, status, "llm")
    assert verdict.score == pytest.approx(score)


def test_combine_refuses_unknown_kinds_and_empty_judgements() -> None:
    with pytest.raises(ValueError, match=r"kind: got 'gpt', must be one of llm, rule-based"):
        combine("gpt", [Judgement(S)])
    with pytest.raises(ValueError, match=r"judgements: got none"):
        combine("llm", [])


def _sequence(*replies: dict[str, Any] | str) -> Reply:
    pending = list(replies)
    return lambda body: pending.pop(0)


def test_llm_judge_takes_the_majority_of_its_judgements(fake_llm: Callable[[Reply], FakeChatServer]) -> None:
    server = fake_llm(
        _sequence(
            judge_message("Solved", "names the club"),
            judge_message("Unsolved", "too vague"),
            judge_message("Solved", "direct"),
        )
    )
    verdict = LlmJudge(LlmEndpoint(server.url, "judge-model"), judgements=3).judge(answered("Inter Miami."))
    assert (verdict.kind, verdict.passed, verdict.status) == ("llm", True, S)
    assert verdict.score == pytest.approx(2 / 3)
    assert [j.to_dict() for j in verdict.judgements] == [
        {"status": "solved", "reason": "names the club"},
        {"status": "unsolved", "reason": "too vague"},
        {"status": "solved", "reason": "direct"},
    ]
    assert len(server.requests) == 3
    request = server.requests[0]
    assert request["model"] == "judge-model"
    assert request["tool_choice"] == {"type": "function", "function": {"name": "check_answer_status"}}
    assert request["tools"][0]["function"]["parameters"]["properties"]["answer_status"]["enum"] == [
        "Solved",
        "Unsolved",
        "Unsure",
    ]
    prompt = request["messages"][0]["content"]
    assert "Query:\nWhich club does Lionel Messi play for?" in prompt and "Answer:\nInter Miami." in prompt


def test_llm_judge_outvoted_fails(fake_llm: Callable[[Reply], FakeChatServer]) -> None:
    server = fake_llm(_sequence(judge_message("Unsolved"), judge_message("Solved"), judge_message("Unsolved")))
    verdict = LlmJudge(LlmEndpoint(server.url, "j")).judge(answered("Maybe Barcelona?"))
    assert (verdict.passed, verdict.status, len(verdict.judgements)) == (False, U, 3)


def test_an_unsure_first_look_is_settled_by_the_execution_details(
    fake_llm: Callable[[Reply], FakeChatServer],
) -> None:
    server = fake_llm(
        _sequence(
            judge_message("Unsure", "cannot tell"),
            judge_message("Solved", "the search output backs it", name="parse_answer_status"),
        )
    )
    verdict = LlmJudge(LlmEndpoint(server.url, "j"), judgements=1).judge(answered("Inter Miami."))
    assert (verdict.passed, verdict.judgements[0].reason) == (True, "the search output backs it")
    second = server.requests[1]
    assert second["tool_choice"]["function"]["name"] == "parse_answer_status"
    details = second["messages"][0]["content"]
    assert '"function": "transfermarkt_search_for_theclique"' in details and "Inter Miami" in details
    assert '"final_answer": "Inter Miami."' in details


def test_without_a_final_answer_the_judge_is_not_asked(fake_llm: Callable[[Reply], FakeChatServer]) -> None:
    server = fake_llm(_sequence())
    judge = LlmJudge(LlmEndpoint(server.url, "j"))
    for task, reason in (
        (answered(None, finish_type=None), "no final answer: the agent never finished with give_answer"),
        (answered(None, finish_type="give_up"), "the agent gave up (Finish with give_up_and_restart)"),
        (answered("  "), "the final answer is empty"),
    ):
        verdict = judge.judge(task)
        assert (verdict.passed, verdict.score, verdict.judgements) == (False, 0.0, [Judgement(U, reason)])
    assert server.requests == []


def test_judge_replies_in_text_are_read_and_unreadable_ones_are_unsure(
    fake_llm: Callable[[Reply], FakeChatServer],
) -> None:
    server = fake_llm(
        _sequence(
            "The status is Unsolved: it does not name a club.",
            '{"answer_status": "Solved"}',
            "no idea",
            "still no idea",
            "no idea either",
            "nothing",
        )
    )
    judge = LlmJudge(LlmEndpoint(server.url, "j"), judgements=1, attempts=2)
    assert judge.judge(answered("Inter Miami.")).judgements[0].status == U
    assert judge.judge(answered("Inter Miami.")).judgements[0].status == S
    unreadable = judge.judge(answered("Inter Miami."))
    assert unreadable.judgements[0].status == N
    assert unreadable.judgements[0].reason.startswith("judge reply unreadable after 2 attempts")
    # An unreadable first look counts as unsure, so the second look is asked too (and is unreadable as well).
    assert [r["tool_choice"]["function"]["name"] for r in server.requests[2:]] == [
        "check_answer_status",
        "check_answer_status",
        "parse_answer_status",
        "parse_answer_status",
    ]


def test_rule_based_judge_is_labelled_and_follows_its_rules() -> None:
    judge = RuleBasedJudge()
    cases = [
        (answered("Lionel Messi plays for Inter Miami."), S, "1 successful API call(s)"),
        (answered(None, finish_type=None), U, "no final answer"),
        (answered("Sorry, I could not find his club."), U, "apology or refusal"),
        (answered("Inter Miami.", [FAILED_STEP]), U, "all 1 API calls failed"),
        (answered("Inter Miami.", []), U, "no API was called"),
        (answered("He plays for Chelsea."), N, "shares no content word"),
    ]
    for task, status, reason in cases:
        verdict = judge.judge(task)
        assert verdict.kind == "rule-based"
        assert verdict.judgements[0].status == status, (task.answer, verdict)
        assert reason in verdict.judgements[0].reason
        assert verdict.passed == (status == S)
