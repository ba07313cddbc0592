"""Decontamination against the real BFCL v4 and StableToolBench data: which training queries are dropped, and why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mor.data import SyntheticDataset, Trajectory, Turn, generate_synthetic, read_trajectories, write_trajectories
from mor.evals.bfcl.data import ITEM_COUNTS as BFCL_COUNTS
from mor.evals.bfcl.data import BfclItem, load_items
from mor.evals.contamination import (
    ContaminationError,
    ContaminationIndex,
    Match,
    build_index,
    decontaminate,
    normalize,
)
from mor.evals.stabletoolbench.data import ITEM_COUNTS as STB_COUNTS
from mor.evals.stabletoolbench.data import StbQuery, load_group
from mor_testing import benchmarks_dir

# The synthetic generator's no-tool queries that BFCL's live_irrelevance category holds verbatim.
SYNTHETIC_IN_BFCL = {"Who are you?": "live_irrelevance_21-2-9", "What can you do?": "live_irrelevance_779-288-0"}


def _trajectory(trajectory_id: str, query: str) -> Trajectory:
    return Trajectory(
        id=trajectory_id,
        turns=[Turn(role="user", content=query), Turn(role="summarizer", content="Done.")],
    )


def _bfcl(category: str, item_id: str) -> BfclItem:
    return next(item for item in load_items(category, benchmarks_dir("bfcl")) if item.id == item_id)


def _stb(group: str, query_id: str) -> StbQuery:
    return next(query for query in load_group(group, benchmarks_dir("stabletoolbench")) if query.id == query_id)


@pytest.fixture(scope="module")
def index() -> ContaminationIndex:
    index = ContaminationIndex()
    index.add_bfcl(benchmarks_dir("bfcl"))
    index.add_stabletoolbench(benchmarks_dir("stabletoolbench"))
    return index


@pytest.fixture(scope="module")
def synthetic() -> SyntheticDataset:
    return generate_synthetic(trajectories=300, seed=0)


def test_normalize_folds_case_unicode_punctuation_and_whitespace() -> None:
    assert normalize("  Don’t  PANIC!!\n Paris,France — ＡＢＣ 2024-01-01 $100 snake_case ") == (
        "dont panic paris france abc 2024 01 01 100 snake case"
    )
    assert normalize("我想知道上海目前的天气状况，可以帮我查询吗？") == "我想知道上海目前的天气状况 可以帮我查询吗"
    assert normalize("?!... ") == ""


def test_the_index_holds_every_bfcl_and_stabletoolbench_item(index: ContaminationIndex) -> None:
    assert index.counts() == {"bfcl": sum(BFCL_COUNTS.values()), "stabletoolbench": sum(STB_COUNTS.values())}
    assert len(index) == 3641 + 765
    multi = next(entry for entry in index.entries if entry.item_id == "live_irrelevance_527-162-2")
    # Items with several user messages are indexed under each of them.
    assert multi.texts == ("What is your name", "My name is Sara , I am Daniel's Wife")


def test_bfcl_copies_are_dropped_and_clean_synthetic_queries_kept(
    index: ContaminationIndex, synthetic: SyntheticDataset, tmp_path: Path
) -> None:
    exact = _bfcl("simple_python", "simple_python_0").question
    recased = _bfcl("multiple", "multiple_10").question
    requoted = _bfcl("parallel", "parallel_5").question
    chinese = _bfcl("live_simple", "live_simple_13-3-9").question
    long = _bfcl("simple_python", "simple_python_131").question
    assert long.startswith("Calculate the compound interest for an initial principal amount of $10000, with an annual")
    edited = long.replace("an annual", "a yearly").replace("the money", "the cash")
    copies = [
        _trajectory("copy-exact", exact),
        _trajectory("copy-case", "  " + recased.upper().replace(" ", "   ").replace(".", "") + "\n"),
        _trajectory("copy-quotes", requoted.replace("'", "\u2019").replace(", ", " ; ").lower()),
        _trajectory("copy-fullwidth", chinese.replace("，", ", ").replace("？", "?")),
        _trajectory("copy-edited", edited),
    ]
    training = copies + list(synthetic.train)
    path = tmp_path / "train.jsonl"
    assert write_trajectories(path, training) == len(training)

    kept, dropped, report = decontaminate(read_trajectories(path), index)

    matches = {item.trajectory.id: item.match for item in dropped}
    assert {key: matches[key] for key in ("copy-exact", "copy-case", "copy-quotes", "copy-fullwidth")} == {
        "copy-exact": Match("bfcl", "simple_python", "simple_python_0", "exact", 1.0),
        "copy-case": Match("bfcl", "multiple", "multiple_10", "exact", 1.0),
        "copy-quotes": Match("bfcl", "parallel", "parallel_5", "exact", 1.0),
        "copy-fullwidth": Match("bfcl", "live_simple", "live_simple_13-3-9", "exact", 1.0),
    }
    # 40 words, 33 distinct 8-grams; the two edits touch 9 + 6 of them.
    assert matches["copy-edited"] == Match(
        "bfcl", "simple_python", "simple_python_131", "ngram", pytest.approx(18 / 33)
    )
    echoed = {t.id: SYNTHETIC_IN_BFCL[t.query] for t in synthetic.train if t.query in SYNTHETIC_IN_BFCL}
    assert len(echoed) == 12
    assert set(matches) == {t.id for t in copies} | set(echoed)
    assert {key: matches[key].item_id for key in echoed} == echoed
    assert [t.id for t in kept] == [t.id for t in synthetic.train if t.id not in echoed]
    assert report.to_dict() == {
        "checked": 275,
        "kept": 258,
        "dropped": 17,
        "no_query": 0,
        "dropped_per_suite": {"bfcl": 17},
        "dropped_per_group": {"bfcl/simple_python": 2, "bfcl/multiple": 1, "bfcl/parallel": 1, "bfcl/live_simple": 1}
        | {"bfcl/live_irrelevance": 12},
        "dropped_per_kind": {"exact": 16, "ngram": 1},
        "indexed_per_suite": {"bfcl": 3641, "stabletoolbench": 765},
        "n": 8,
        "threshold": 0.5,
    }


def test_a_stabletoolbench_query_is_dropped_exactly_or_by_ngrams(index: ContaminationIndex) -> None:
    query = _stb("G2_instruction", "1643").query
    assert query.startswith("Help me find a 7-letter word that starts with 'fru' to use as a unique password")
    training = [
        _trajectory("stb-copy", query.upper().replace("'", '"')),
        _trajectory("stb-edited", query.replace("password", "passphrase")),
        _trajectory("stb-prefix", "Help me find a 7-letter word that starts with 'fru'."),
        _trajectory("clean", "Find me a five-letter word that begins with 'gra' for a crossword puzzle I am solving."),
        Trajectory(id="no-user", turns=[Turn(role="system", content=query), Turn(role="summarizer", content="Hi.")]),
    ]

    kept, dropped, report = decontaminate(training, index)

    assert [(item.trajectory.id, item.match) for item in dropped] == [
        ("stb-copy", Match("stabletoolbench", "G2_instruction", "1643", "exact", 1.0)),
        # 37 words, 30 8-grams, 8 of them hold the changed word.
        ("stb-edited", Match("stabletoolbench", "G2_instruction", "1643", "ngram", pytest.approx(22 / 30))),
        # Every 8-gram of the prefix is in the query.
        ("stb-prefix", Match("stabletoolbench", "G2_instruction", "1643", "ngram", 1.0)),
    ]
    assert [t.id for t in kept] == ["clean", "no-user"]
    assert (report.checked, report.kept, report.dropped, report.no_query) == (5, 2, 3, 1)
    assert report.dropped_per_suite == {"stabletoolbench": 3}
    assert report.dropped_per_kind == {"exact": 1, "ngram": 2}


def test_a_short_query_only_matches_exactly(index: ContaminationIndex) -> None:
    assert _bfcl("simple_python", "simple_python_245").question == "Who discovered radium?"
    assert index.check("who discovered RADIUM") == Match("bfcl", "simple_python", "simple_python_245", "exact", 1.0)
    assert index.check("Who discovered radium first?") is None
    # Six words, all inside simple_python_0, but shorter than n=8: no n-gram matching.
    assert index.check("Find the area of a triangle") is None
    assert index.check("") is None
    assert index.check("?!") is None

    bigrams = build_index(benchmarks_dir("bfcl"), bfcl=["simple_python"], stabletoolbench=(), n=2)
    assert bigrams.check("Who discovered radium first?") == Match(
        "bfcl", "simple_python", "simple_python_245", "ngram", pytest.approx(2 / 3)
    )
    assert bigrams.check("Who first discovered radium?") is None  # 1 of 3 bigrams


def test_n_and_threshold_are_configurable_and_checked() -> None:
    data_dir = benchmarks_dir("bfcl")
    edited = (
        _bfcl("simple_python", "simple_python_131")
        .question.replace("an annual", "a yearly")
        .replace("the money", "the cash")
    )
    loose = build_index(data_dir, bfcl=["bfcl/simple_python"], stabletoolbench=(), threshold=0.5)
    strict = build_index(data_dir, bfcl=["simple_python"], stabletoolbench=(), threshold=0.6)
    assert loose.counts() == strict.counts() == {"bfcl": 400}
    assert loose.check(edited) == Match("bfcl", "simple_python", "simple_python_131", "ngram", pytest.approx(18 / 33))
    assert strict.check(edited) is None
    # Overlap must exceed the threshold: a 9-word query sharing 1 of its 2 8-grams is not a match at 0.5.
    assert loose.check("Find the area of a triangle with a sail.") is None
    assert build_index(data_dir, bfcl=["simple_python"], stabletoolbench=(), threshold=0.4).check(
        "Find the area of a triangle with a sail."
    ) == Match("bfcl", "simple_python", "simple_python_0", "ngram", 0.5)

    with pytest.raises(ContaminationError) as raised:
        build_index(data_dir, bfcl=["simple", "multiple"], stabletoolbench=["G4_instruction"], n=0, threshold=1.5)
    message = str(raised.value)
    for part in ("'simple'", "simple_python", "'G4_instruction'", "n: got 0", "threshold: got 1.5"):
        assert part in message
    with pytest.raises(ContaminationError, match="bfcl: got \\['simple_python'\\] but no data_dir"):
        build_index(bfcl=["simple_python"])


def test_held_out_synthetic_queries_are_indexed_beside_the_benchmarks(synthetic: SyntheticDataset) -> None:
    data_dir = benchmarks_dir("stabletoolbench")
    index = build_index(data_dir, bfcl=(), stabletoolbench=["G1_tool"], held_out=synthetic.test)
    assert index.counts() == {"stabletoolbench": 158, "synthetic": 30}
    by_id = {t.id: t.query or "" for t in synthetic.test}
    assert by_id["synthetic-0-test-00011"] == "Track package TRK697735."
    assert by_id["synthetic-0-test-00024"].endswith("find a nonstop flight from Hanoi to Dubai on 2026-12-20.")
    stb = load_group("G1_tool", data_dir)[0]
    copies = [
        _trajectory("held-exact", "track package trk697735"),
        _trajectory("held-edited", by_id["synthetic-0-test-00024"].replace("Dubai", "Doha")),
        _trajectory("stb", stb.query),
    ]

    kept, dropped, report = decontaminate([*synthetic.train, *copies], index)

    assert [(item.trajectory.id, item.match) for item in dropped] == [
        ("held-exact", Match("synthetic", "synthetic", "synthetic-0-test-00011", "exact", 1.0)),
        # 22 words, 15 8-grams, 5 of them hold the changed city (the 18th word).
        ("held-edited", Match("synthetic", "synthetic", "synthetic-0-test-00024", "ngram", pytest.approx(10 / 15))),
        ("stb", Match("stabletoolbench", "G1_tool", stb.id, "exact", 1.0)),
    ]
    assert [t.id for t in kept] == [t.id for t in synthetic.train]
    assert report.dropped_per_suite == {"synthetic": 2, "stabletoolbench": 1}
    assert report.dropped_per_group == {"synthetic/synthetic": 2, "stabletoolbench/G1_tool": 1}
    assert build_index(held_out=synthetic.test).counts() == {"synthetic": 30}


def test_checking_speed(index: ContaminationIndex, synthetic: SyntheticDataset) -> None:
    """Prints records checked per second (typical short queries, and StableToolBench-length ones); asserts counts."""
    short = [t.query or "" for t in synthetic.train] * 40
    long = [query.query for query in load_group("G1_instruction", benchmarks_dir("stabletoolbench"))] * 20
    for name, queries in (("synthetic", short), ("stabletoolbench", long)):
        start = time.perf_counter()
        matched = sum(index.check(query) is not None for query in queries)
        elapsed = time.perf_counter() - start
        words = sum(len(query.split()) for query in queries) / len(queries)
        print(f"{name}: {len(queries)} queries of {words:.0f} words, {len(queries) / elapsed:,.0f} per second")
        assert matched == (12 * 40 if name == "synthetic" else len(queries))
