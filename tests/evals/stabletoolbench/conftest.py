"""Fixtures: the StableToolBench data read in place, real HTTP servers (fake LLM endpoints, the virtual API server)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mor.evals.stabletoolbench import ApiCatalog, StbQuery, load_group

from ._fakes import FakeChatServer, Reply


def _benchmarks_dir() -> Path | None:
    candidates = [Path(os.environ["MOR_BENCHMARKS_DIR"])] if os.environ.get("MOR_BENCHMARKS_DIR") else []
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks")
    for candidate in candidates:
        if (candidate / "stabletoolbench" / "derived").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The directory holding stabletoolbench/ (never copied into the repository)."""
    found = _benchmarks_dir()
    if found is None:
        message = "StableToolBench data not found: set MOR_BENCHMARKS_DIR to the directory holding stabletoolbench/"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI has ../shared/benchmarks beside the clone)")
        pytest.skip(message)
    return found


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
