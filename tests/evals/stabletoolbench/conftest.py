"""Fixtures: the StableToolBench data read in place, real HTTP servers (fake LLM endpoints, the virtual API server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mor.evals.stabletoolbench import ApiCatalog, StbQuery, load_group
from mor_testing import benchmarks_dir as find_benchmarks_dir

from ._fakes import FakeChatServer, Reply


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The directory holding stabletoolbench/ (never copied into the repository)."""
    return find_benchmarks_dir("stabletoolbench")


@pytest.fixture(scope="session")
def g1_instruction(benchmarks_dir: Path) -> list[StbQuery]:
    """The G1_instruction queries, loaded once."""
    return load_group("G1_instruction", benchmarks_dir)


@pytest.fixture(scope="session")
def messi(g1_instruction: list[StbQuery]) -> StbQuery:
    """Query 588 (TheClique tools: Transfermarkt search/details, Songkick, ...)."""
    return next(query for query in g1_instruction if query.id == "588")


@pytest.fixture(scope="session")
def messi_catalog(messi: StbQuery) -> ApiCatalog:
    """The API docs of query 588."""
    return ApiCatalog.from_queries([messi])


@pytest.fixture
def fake_llm() -> Iterator[Callable[[Reply], FakeChatServer]]:
    """Start real OpenAI-compatible HTTP servers with canned replies; all stopped after the test."""
    servers: list[FakeChatServer] = []

    def start(reply: Reply) -> FakeChatServer:
        server = FakeChatServer(reply).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
