"""API keys: resolution order, generation, digests only in replicas, 401s in the OpenAI shape."""

from __future__ import annotations

import pytest

from mor.serve.auth import API_KEYS_ENV, KeySet, digest_key, generate_key, resolve_api_keys
from mor.serve.errors import APIError


def test_cli_keys_win_over_the_environment() -> None:
    keys, generated = resolve_api_keys(["key-one-123", "key-two-456,key-one-123"], {API_KEYS_ENV: "env-key-789"})
    assert keys == ["key-one-123", "key-two-456"] and not generated


def test_environment_keys_are_comma_separated() -> None:
    keys, generated = resolve_api_keys(None, {API_KEYS_ENV: " env-key-789 , other-key-000 ,"})
    assert keys == ["env-key-789", "other-key-000"] and not generated


def test_without_keys_one_is_generated() -> None:
    keys, generated = resolve_api_keys([], {})
    assert generated and len(keys) == 1 and keys[0].startswith("mor-") and len(keys[0]) == 36
    assert generate_key() != generate_key()


def test_short_keys_are_refused_with_a_fix() -> None:
    with pytest.raises(ValueError, match="api key #2: got 3 characters, must be at least 8.*secrets"):
        resolve_api_keys(["long-enough-key", "abc"], {})


def test_key_set_checks_bearer_tokens() -> None:
    keys = KeySet.from_keys(["secret-key-1", "secret-key-2"])
    assert "secret-key-1" not in repr(keys) and keys.digests[0] == digest_key("secret-key-1")
    keys.check("Bearer secret-key-2")
    keys.check("bearer   secret-key-1 ")
    for header, fragment in [
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "must be 'Bearer"),
        ("Bearer", "must be 'Bearer"),
        ("Bearer wrong-key", "incorrect API key"),
    ]:
        with pytest.raises(APIError, match=fragment) as caught:
            keys.check(header)
        assert caught.value.status == 401
        assert caught.value.body()["error"]["code"] == "invalid_api_key"
        assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_an_empty_key_set_never_runs_open() -> None:
    with pytest.raises(ValueError, match="never runs open"):
        KeySet(())
