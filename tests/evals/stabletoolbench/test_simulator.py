"""The LLM API simulator: its prompt and how it reads replies."""

from __future__ import annotations

import json
from collections.abc import Callable

from mor.evals.stabletoolbench import LlmEndpoint, LlmSimulator, StbQuery, simulator_messages

from ._fakes import FakeChatServer, Reply


def test_the_prompt_holds_the_doc_the_template_examples_and_arguments(messi: StbQuery) -> None:
    doc = messi.docs["transfermarkt_search_for_theclique"]
    examples = [({"name": "neymar"}, {"error": "", "response": {"Players": [{"name": "Neymar"}]}})]
    system, user = simulator_messages(doc, {"name": "messi"}, examples)
    assert system["role"] == "system" and '{"error": "", "response": <the API\'s response>}' in system["content"]
    text = user["content"]
    assert '"api": "Transfermarkt search"' in text and '"description": "Search by name"' in text
    assert '"template_response": {"Clubs": [' in text
    assert 'Earlier calls of this API:\n[{"arguments": {"name": "neymar"}' in text
    assert text.endswith('Arguments of this call:\n{"name": "messi"}')


def test_examples_are_cut_to_the_character_budget(messi: StbQuery) -> None:
    doc = messi.docs["transfermarkt_search_for_theclique"]
    examples = [({"n": n}, {"error": "", "response": "x" * 900}) for n in range(5)]
    _, user = simulator_messages(doc, {}, examples, max_example_chars=2048)
    shown = json.loads(user["content"].split("Earlier calls of this API:\n")[1].split("\n\nArguments")[0])
    assert [entry["arguments"] for entry in shown] == [{"n": 0}, {"n": 1}]
    _, user = simulator_messages(doc, {}, [])
    assert "Earlier calls of this API:\nnone" in user["content"]


def test_replies_are_read_as_the_api_response(messi: StbQuery, fake_llm: Callable[[Reply], FakeChatServer]) -> None:
    replies = iter(['```json\n{"error": "", "response": {"Players": ["Messi"]}}\n```', '{"Players": ["Messi"]}'])
    server = fake_llm(lambda body: next(replies))
    simulator = LlmSimulator(LlmEndpoint(server.url, "sim"))
    doc = messi.docs["transfermarkt_search_for_theclique"]
    assert simulator.simulate(doc, {"name": "messi"}, []) == {"error": "", "response": {"Players": ["Messi"]}}
    # A bare JSON object is taken as the response itself.
    assert simulator.simulate(doc, {"name": "messi"}, []) == {"error": "", "response": {"Players": ["Messi"]}}
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert server.requests[0]["temperature"] == 0.0


def test_replies_that_are_not_json_are_asked_again_then_reported(
    messi: StbQuery, fake_llm: Callable[[Reply], FakeChatServer]
) -> None:
    server = fake_llm(lambda body: "I am not JSON")
    simulator = LlmSimulator(LlmEndpoint(server.url, "sim"), attempts=3)
    result = simulator.simulate(messi.docs["transfermarkt_search_for_theclique"], {"name": "messi"}, [])
    assert result["response"] == ""
    assert result["error"].startswith("the API simulator gave no JSON response after 3 attempts")
    assert len(server.requests) == 3
