"""Suite dispatch: names to suites and categories, options, model URIs to targets, and a run's rows and metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mor.data import DEFAULT_ROLES
from mor.evals.bfcl import CATEGORIES
from mor.evals.runner import (
    STABLETOOLBENCH_GROUPS,
    SuiteSelection,
    build_target,
    check_options,
    is_endpoint,
    parse_suite,
    run_suite,
)
from mor.evals.target import TargetReply
from mor.evals.targets import AgentTarget, OpenAITarget, write_untrained_agent
from mor.settings import Settings
from mor_testing import benchmarks_dir as _benchmarks_dir

TINY_MOR = {
    "rank": 2,
    "target_modules": ["q_proj", "v_proj"],
    "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
}
TRAIN_SPEC = """\
kind: train
name: tiny-untrained
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 6, trajectories: 40, seed: 3}}]}
"""


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return _benchmarks_dir()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=None
    )


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent")
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    write_untrained_agent(
        root / "agent", texts=texts, cache_dir=root / "cache", mor_config=TINY_MOR, spec_text=TRAIN_SPEC
    )
    return root / "agent"


def test_parse_suite() -> None:
    assert parse_suite("bfcl/simple_python") == SuiteSelection("bfcl", ("simple_python",))
    assert parse_suite("bfcl", ["multiple", "parallel"]) == SuiteSelection("bfcl", ("multiple", "parallel"))
    assert parse_suite("bfcl").categories == CATEGORIES
    assert parse_suite("stabletoolbench/G1_tool") == SuiteSelection("stabletoolbench", ("G1_tool",))
    assert parse_suite("stabletoolbench").categories == STABLETOOLBENCH_GROUPS
    assert parse_suite("synthetic") == SuiteSelection("synthetic", ("all",))
    assert parse_suite("bfcl/simple_python").label == "bfcl/simple_python" and parse_suite("bfcl").label == "bfcl"
    with pytest.raises(ValueError, match="suite: got 'bfcll/simple', must be one of bfcl, stabletoolbench, synthetic"):
        parse_suite("bfcll/simple")
    with pytest.raises(ValueError, match="the v4 name of python 'simple' is simple_python"):
        parse_suite("bfcl/simple")
    with pytest.raises(ValueError, match="category: got 'G4_magic', StableToolBench groups are G1_instruction"):
        parse_suite("stabletoolbench/G4_magic")
    with pytest.raises(ValueError, match="names its category already"):
        parse_suite("bfcl/multiple", ["parallel"])
    with pytest.raises(ValueError, match=r"categories: \['multiple'\] given twice"):
        parse_suite("bfcl", ["multiple", "multiple"])
    with pytest.raises(ValueError, match="the synthetic suite has no categories"):
        parse_suite("synthetic/hard")


def test_check_options(tmp_path: Path) -> None:
    assert check_options({"max_items": 3, "data_dir": str(tmp_path / "x" / ".."), "mode": None}) == {
        "max_items": 3,
        "data_dir": str(tmp_path),
    }
    with pytest.raises(ValueError, match=r"options: \['max_item'\] are not run options"):
        check_options({"max_item": 3})
    with pytest.raises(ValueError, match="max_items: got 0, must be a whole number >= 1"):
        check_options({"max_items": 0})
    with pytest.raises(ValueError, match="mode: got 'bfs', must be one of cot, dfsdt"):
        check_options({"mode": "bfs"})
    with pytest.raises(ValueError, match="judge_model: not given with judge_url 'http://judge/v1'"):
        check_options({"judge_url": "http://judge/v1"})


def test_is_endpoint() -> None:
    assert is_endpoint("http://127.0.0.1:8000/v1") and is_endpoint("https://api.example.com/v1")
    assert not is_endpoint("models:/mor-agent@champion") and not is_endpoint("/tmp/agent")


class Answering:
    """A plain model that answers each question with the same text."""

    name = "answering"

    def __init__(self, content: str) -> None:
        self.content = content
        self.questions: list[str] = []

    def respond(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *, tool_choice: str = "auto"
    ) -> TargetReply:
        self.questions.append(str(messages[-1]["content"]))
        return TargetReply(content=self.content, latency_s=0.5)


def test_run_bfcl_rows_and_metrics(data_dir: Path, settings: Settings) -> None:
    target = Answering("I would rather not call anything.")
    progress: list[tuple[str, int, int]] = []
    result = run_suite(
        parse_suite("bfcl", ["simple_python", "irrelevance"]),
        target,
        settings,
        {"max_items": 2, "data_dir": str(data_dir)},
        progress=lambda stage, done, total: progress.append((stage, done, total)),
    )
    assert [(row.category, row.item_id, row.passed, row.failure_reason, row.failing_role) for row in result.rows] == [
        ("simple_python", "simple_python_0", False, "no_call", None),
        ("simple_python", "simple_python_1", False, "no_call", None),
        ("irrelevance", "irrelevance_0", True, None, None),
        ("irrelevance", "irrelevance_1", True, None, None),
    ]
    assert progress == [
        ("bfcl/simple_python", 1, 2),
        ("bfcl/simple_python", 2, 2),
        ("bfcl/irrelevance", 1, 2),
        ("bfcl/irrelevance", 2, 2),
    ]
    assert result.metrics["accuracy"] == 0.5 and result.metrics["accuracy/irrelevance"] == 1.0
    assert result.metrics["reasons/no_call"] == 2.0 and result.metrics["mean_latency_s"] == 0.5
    assert result.judge_kind is None and len(target.questions) == 4


def test_the_data_dir_comes_from_the_options_or_the_settings(data_dir: Path, settings: Settings) -> None:
    with pytest.raises(ValueError, match="data_dir: the bfcl suite reads benchmark data, and neither"):
        run_suite(parse_suite("bfcl/simple_python"), Answering("no"), settings, {"max_items": 1})
    configured = settings.model_copy(update={"benchmarks_dir": data_dir})
    result = run_suite(parse_suite("bfcl/simple_python"), Answering("no"), configured, {"max_items": 1})
    assert [row.item_id for row in result.rows] == ["simple_python_0"]


def test_an_untrained_agent_fails_bfcl_items_on_its_reasoner(
    agent_dir: Path, data_dir: Path, settings: Settings
) -> None:
    target, info = build_target(str(agent_dir), settings, {"max_new_tokens": 4, "max_steps": 2})
    assert isinstance(target, AgentTarget) and target.agent_dir is not None
    assert (info.uri, info.name, info.version, info.base_model) == (str(agent_dir), "agent", None, "builtin:tiny-llama")
    assert target.agent.config.max_steps == 2 and target.agent.config.budget("executor") == 4
    assert target.agent.config.max_context_tokens == 1024
    result = run_suite(parse_suite("bfcl/simple_python"), target, settings, {"max_items": 2, "data_dir": str(data_dir)})
    assert [(row.item_id, row.passed, row.failing_role) for row in result.rows] == [
        ("simple_python_0", False, "reasoner"),
        ("simple_python_1", False, "reasoner"),
    ]
    assert all(row.failure_reason == "unparseable" for row in result.rows)  # the reasoner's turn was unusable
    assert all("no end marker within 4 tokens" in (row.detail or "") for row in result.rows)
    assert result.metrics["failures/reasoner"] == 2.0


def test_stabletoolbench_groups_give_rule_based_rows(data_dir: Path, settings: Settings) -> None:
    """No judge endpoint configured: the rule-based judge decides, and the run says so."""
    result = run_suite(
        parse_suite("stabletoolbench/G1_instruction"),
        Answering("I would rather not call anything."),
        settings,
        {"max_items": 2, "data_dir": str(data_dir), "mode": "cot"},
    )
    assert [(row.category, row.passed, row.failure_reason, row.failing_role) for row in result.rows] == [
        ("G1_instruction", False, "judged_unsolved", None)
    ] * 2
    assert [row.item_id for row in result.rows] == ["588", "608"]
    assert result.judge_kind == "rule-based" and all(
        row.detail == "rule-based judge: score 0.00" for row in result.rows
    )
    assert result.metrics["accuracy/G1_instruction"] == 0.0 and result.metrics["G1_instruction/sopr"] == 0.0
    assert result.metrics["sopr"] == 0.0 and result.metrics["items"] == 2.0


def test_the_synthetic_suite_uses_the_agents_own_held_out_set(agent_dir: Path, settings: Settings) -> None:
    target, _ = build_target(str(agent_dir), settings, {"max_new_tokens": 4})
    result = run_suite(parse_suite("synthetic"), target, settings, {"max_items": 2})
    assert len(result.rows) == 2 and not any(row.passed for row in result.rows)
    assert {row.failing_role for row in result.rows} == {"reasoner"}
    assert result.metrics["items"] == 2.0 and result.metrics["call_accuracy"] <= 1.0
    with pytest.raises(ValueError, match="suite: synthetic evaluates an in-process agent"):
        run_suite(parse_suite("synthetic"), Answering("x"), settings, {})


def test_the_synthetic_suite_runs_episodes_in_the_specs_eval_batches(
    agent_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    """Progress is reported per batch: the spec's `eval.batch_size: 1` gives one report per item, the default
    (16) one for both."""
    batched = tmp_path / "agent"
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    write_untrained_agent(
        batched,
        texts=texts,
        cache_dir=tmp_path / "cache",
        mor_config=TINY_MOR,
        spec_text=TRAIN_SPEC + "eval: {batch_size: 1}\n",
    )

    def reports(directory: Path) -> list[int]:
        target, _ = build_target(str(directory), settings, {"max_new_tokens": 4})
        seen: list[int] = []
        run_suite(
            parse_suite("synthetic"),
            target,
            settings,
            {"max_items": 2},
            progress=lambda stage, done, total: seen.append(done),
        )
        return seen

    assert (reports(batched), reports(agent_dir)) == ([1, 2], [2])


class _ModelsServer:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                data = json.dumps(
                    {"object": "list", "data": [{"id": "served-1", "object": "model", "created": 0, "owned_by": "x"}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def models_server() -> Iterator[_ModelsServer]:
    server = _ModelsServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_an_endpoint_uri_builds_an_openai_target(
    models_server: _ModelsServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, info = build_target(models_server.url, settings, {})
    assert isinstance(target, OpenAITarget) and (info.name, info.version) == ("served-1", None)
    named, info = build_target(models_server.url, settings, {"endpoint_model": "gpt-x"})
    assert info.name == "gpt-x"
    monkeypatch.delenv("MOR_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="api_key_env: 'MOR_TEST_KEY' is not set in the job's environment"):
        build_target(models_server.url, settings, {"api_key_env": "MOR_TEST_KEY"})
    monkeypatch.setenv("MOR_TEST_KEY", "sk-1")
    keyed, _ = build_target(models_server.url, settings, {"api_key_env": "MOR_TEST_KEY", "endpoint_model": "m"})
    assert keyed._client.api_key == "sk-1"  # noqa: SLF001 - the key reached the client, from the environment
