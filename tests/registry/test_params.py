"""Flattening specs into MLflow params."""

from __future__ import annotations

from mor.registry import MAX_PARAM_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, TRUNCATION_MARK, flatten_params


def test_nested_mappings_and_lists_of_mappings_flatten_to_dotted_keys() -> None:
    spec = {
        "name": "quickstart",
        "mor": {"rank": 16, "roles": {"executor": {"routed": 4, "top_k": 3, "shared": True}}},
        "data": {"sources": [{"synthetic": {"tools": 24, "seed": 0}}]},
        "train": {"lr": 5.0e-5, "workers": 2},
        "mor_targets": ["q_proj", "k_proj"],
        "eval": None,
    }
    assert flatten_params(spec) == {
        "name": "quickstart",
        "mor.rank": "16",
        "mor.roles.executor.routed": "4",
        "mor.roles.executor.top_k": "3",
        "mor.roles.executor.shared": "true",
        "data.sources.0.synthetic.tools": "24",
        "data.sources.0.synthetic.seed": "0",
        "train.lr": "5e-05",
        "train.workers": "2",
        "mor_targets": '["q_proj", "k_proj"]',
        "eval": "null",
    }


def test_long_values_are_cut_to_the_mlflow_limit_with_a_mark() -> None:
    flat = flatten_params({"prompt": "x" * 10_000})
    assert len(flat["prompt"]) == MAX_PARAM_VALUE_LENGTH
    assert flat["prompt"].endswith(TRUNCATION_MARK)
    assert flat["prompt"].startswith("x" * 100)


def test_keys_are_sanitised_and_long_keys_shortened_uniquely() -> None:
    flat = flatten_params({"a:b": 1, "weird key?": 2, "k" * 300: 3, "k" * 299: 4})
    assert flat["a_b"] == "1"
    assert flat["weird key_"] == "2"
    long_keys = [key for key in flat if key.startswith("kkk")]
    assert len(long_keys) == 2
    assert all(len(key) <= MAX_PARAM_KEY_LENGTH for key in long_keys)


def test_prefix_and_empty_mapping() -> None:
    assert flatten_params({"extra": {}}, prefix="spec") == {"spec.extra": "{}"}
