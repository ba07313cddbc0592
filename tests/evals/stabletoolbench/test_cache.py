"""The response cache: canonical keys, layout on disk, examples, concurrent writers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from mor.evals.stabletoolbench import ApiRoute, ResponseCache, canonical_arguments

ROUTE = ApiRoute("Data", "theclique", "transfermarkt_search")


def test_canonical_arguments_ignore_key_order() -> None:
    assert canonical_arguments({"b": 1, "a": "é"}) == canonical_arguments({"a": "é", "b": 1}) == '{"a":"é","b":1}'
    assert canonical_arguments({"a": 1}) != canonical_arguments({"a": "1"})


def test_put_then_get_by_route_and_arguments(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    assert cache.get(ROUTE, {"name": "messi"}) is None
    cache.put(ROUTE, {"name": "messi"}, {"error": "", "response": {"Players": ["Lionel Messi"]}})
    assert cache.get(ROUTE, {"name": "messi"}) == {"error": "", "response": {"Players": ["Lionel Messi"]}}
    assert cache.get(ROUTE, {"name": "ronaldo"}) is None
    assert cache.get(ApiRoute("Data", "theclique", "transfermarkt_details"), {"name": "messi"}) is None
    path = tmp_path / "Data" / "theclique" / "transfermarkt_search.json"
    assert cache.path(ROUTE) == path
    assert json.loads(path.read_text()) == {
        '{"name":"messi"}': {"error": "", "response": {"Players": ["Lionel Messi"]}}
    }
    assert cache.count() == cache.count(ROUTE) == 1


def test_examples_are_the_oldest_entries_up_to_the_limit(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    for n in range(7):
        cache.put(ROUTE, {"name": f"p{n}"}, {"error": "", "response": n})
    examples = cache.examples(ROUTE, limit=3)
    assert examples == [
        ({"name": "p0"}, {"error": "", "response": 0}),
        ({"name": "p1"}, {"error": "", "response": 1}),
        ({"name": "p2"}, {"error": "", "response": 2}),
    ]
    assert cache.examples(ApiRoute("Data", "x", "y")) == []


def test_a_damaged_file_reads_as_empty_and_is_replaced(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.path(ROUTE).parent.mkdir(parents=True)
    cache.path(ROUTE).write_text("{not json")
    assert cache.get(ROUTE, {}) is None
    cache.put(ROUTE, {}, {"error": "", "response": "ok"})
    assert cache.get(ROUTE, {}) == {"error": "", "response": "ok"}


def test_route_names_cannot_escape_the_cache_dir(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    path = cache.path(ApiRoute("..", "../../etc", "passwd"))
    assert path.resolve().is_relative_to((tmp_path / "cache").resolve())


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    caches = [ResponseCache(tmp_path), ResponseCache(tmp_path)]  # two servers sharing one directory

    def write(worker: int) -> None:
        for n in range(10):
            caches[worker % 2].put(ROUTE, {"w": worker, "n": n}, {"error": "", "response": worker * 100 + n})

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert caches[0].count(ROUTE) == 60
    assert caches[1].get(ROUTE, {"n": 9, "w": 5}) == {"error": "", "response": 509}
