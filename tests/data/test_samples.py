"""Role samples on disk (`mor.data.samples`): the Parquet writer, its statistics, the render identity and the
decoded role segments."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES, generate_synthetic, render, render_text
from mor.data.engine import LocalEngine, Spool, row
from mor.data.render import IGNORE_INDEX
from mor.data.samples import (
    SAMPLE_COLUMNS,
    SampleWriter,
    read_samples,
    render_identity,
    role_segments,
    sample_rows,
    spool_trajectories,
    write_samples,
)

ROLES = list(DEFAULT_ROLES)


@pytest.fixture(scope="module")
def corpus() -> tuple[list, object]:
    data = generate_synthetic(tools=8, trajectories=60, seed=3)
    tokenizer = train_tokenizer([render_text(t) for t in data.train], roles=ROLES, vocab_size=400)
    return data.train, tokenizer


def test_written_samples_read_back_with_their_statistics(tmp_path: Path, corpus: tuple[list, object]) -> None:
    trajectories, tokenizer = corpus
    path = tmp_path / "samples.parquet"
    stats = write_samples(trajectories, path, tokenizer=tokenizer, roles=ROLES, max_seq_len=4096)
    assert pq.read_schema(path).names == list(SAMPLE_COLUMNS)
    samples = read_samples(path)
    expected = [render(t, tokenizer, ROLES) for t in trajectories]
    assert [s["input_ids"] for s in samples] == [e.input_ids for e in expected]
    assert [s["labels"] for s in samples] == [e.labels for e in expected]
    learned = sum(label != IGNORE_INDEX for e in expected for label in e.labels)
    summary = stats.to_dict()
    assert summary["sequences"] == len(trajectories) and summary["learned_tokens"] == learned
    assert summary["tokens"] == sum(len(e) for e in expected)
    assert set(summary["learned_tokens_by_role"]) <= set(ROLES) and summary["learned_tokens_by_role"]["executor"] > 0
    assert summary["length"]["max"] == max(len(e) for e in expected) and summary["fit"]["dropped"] == 0
    assert summary["sequences_by_source"] == {"synthetic": len(trajectories)}


def test_samples_longer_than_max_seq_len_are_dropped_and_counted(tmp_path: Path, corpus: tuple[list, object]) -> None:
    trajectories, tokenizer = corpus
    lengths = sorted(len(render(t, tokenizer, ROLES)) for t in trajectories)
    limit = lengths[len(lengths) // 2]
    stats = write_samples(trajectories, tmp_path / "s.parquet", tokenizer=tokenizer, roles=ROLES, max_seq_len=limit)
    fit = stats.to_dict()["fit"]
    kept = sum(length <= limit for length in lengths)
    assert (fit["kept"], fit["dropped"], fit["longest"]) == (kept, len(lengths) - kept, lengths[-1])
    assert len(read_samples(tmp_path / "s.parquet")) == kept and len(fit["dropped_ids"]) == len(lengths) - kept


def test_the_engine_sees_a_spool_of_shards(tmp_path: Path, corpus: tuple[list, object]) -> None:
    trajectories, tokenizer = corpus
    spool = spool_trajectories(trajectories, tmp_path / "spool", rows_per_shard=25)
    assert len(spool.paths) == 3 and spool.rows == len(trajectories)
    direct = write_samples(trajectories, tmp_path / "a.parquet", tokenizer=tokenizer, roles=ROLES, max_seq_len=4096)
    spooled = write_samples(
        spool, tmp_path / "b.parquet", tokenizer=tokenizer, roles=ROLES, max_seq_len=4096, engine=LocalEngine()
    )
    assert read_samples(tmp_path / "a.parquet") == read_samples(tmp_path / "b.parquet")
    assert direct.to_dict() == spooled.to_dict()


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "samples.parquet"
    with pytest.raises(RuntimeError), SampleWriter(path, ROLES):
        raise RuntimeError("the job was killed")
    assert list(tmp_path.iterdir()) == []


def test_role_segments_decode_each_roles_tokens(tmp_path: Path, corpus: tuple[list, object]) -> None:
    trajectories, tokenizer = corpus
    write_samples(trajectories[:3], tmp_path / "s.parquet", tokenizer=tokenizer, roles=ROLES, max_seq_len=4096)
    (first,) = sample_rows(tmp_path / "s.parquet", 1)
    segments = role_segments(first, tokenizer, ROLES)
    assert "".join(segment["text"] for segment in segments) == tokenizer.decode(first["input_ids"])
    assert sum(segment["tokens"] for segment in segments) == len(first["input_ids"])
    learned = [segment for segment in segments if segment["learned"]]
    assert learned and all(segment["role"] in ROLES for segment in learned)
    assert any(segment["text"].startswith("{") for segment in learned if segment["role"] == "executor")


def test_render_identity_names_tokenizer_roles_and_length(corpus: tuple[list, object]) -> None:
    trajectories, tokenizer = corpus
    other = train_tokenizer([render_text(t) for t in trajectories[:20]], roles=ROLES, vocab_size=400)
    base = render_identity(tokenizer, ROLES, 1024)
    assert base == render_identity(tokenizer, list(ROLES), 1024)
    assert len({base, render_identity(other, ROLES, 1024), render_identity(tokenizer, ROLES[::-1], 1024)}) == 3
    assert render_identity(tokenizer, ROLES, 512) != base


def test_a_spool_rotates_shards_and_reads_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", rows_per_shard=2)
    for n in range(5):
        spool.write(row("x", n, payload=str(n)))
    spool.close()
    assert [p.name for p in spool.paths] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert [item["source"] for item in spool] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rows_per_shard"):
        Spool(tmp_path / "other", rows_per_shard=0)
