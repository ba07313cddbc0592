"""API keys of the served agent: where they come from, how they are stored, how a request is checked.

Keys come from `--api-key` (repeatable) or `MOR_API_KEYS` (comma-separated). With none configured the server
generates one and prints it rather than running open. Replicas only ever hold SHA-256 digests of the keys, so a key
never appears in Ray's deployment config or dashboard; a presented key is hashed and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mor.serve.errors import APIError

__all__ = ["API_KEYS_ENV", "KeySet", "digest_key", "generate_key", "resolve_api_keys"]

API_KEYS_ENV = "MOR_API_KEYS"
_MIN_KEY_LENGTH = 8


def generate_key() -> str:
    """A new random API key (`mor-` + 32 URL-safe characters)."""
    return "mor-" + secrets.token_urlsafe(24)


def digest_key(key: str) -> str:
    """The hex SHA-256 digest a replica stores for `key`."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def resolve_api_keys(cli_keys: Sequence[str] | None, env: Mapping[str, str]) -> tuple[list[str], bool]:
    """The keys in force and whether one was generated: `--api-key` values, else `MOR_API_KEYS`, else a new key.

    Raises ValueError for a key shorter than 8 characters or containing whitespace or a comma.
    """
    keys: list[str] = []
    for value in cli_keys or []:
        keys.extend(_split(value))
    if not keys:
        keys = _split(env.get(API_KEYS_ENV, ""))
    problems = [
        f"api key #{n}: got {len(key)} characters, must be at least {_MIN_KEY_LENGTH} with no whitespace; "
        "e.g. generate one with `python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        for n, key in enumerate(keys, start=1)
        if len(key) < _MIN_KEY_LENGTH or any(ch.isspace() for ch in key)
    ]
    if problems:
        raise ValueError("; ".join(problems))
    if keys:
        return list(dict.fromkeys(keys)), False
    return [generate_key()], True


@dataclass(frozen=True)
class KeySet:
    """The digests of the accepted keys; `check` raises a 401 `APIError` for a missing or wrong key."""

    digests: tuple[str, ...]

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> KeySet:
        """A key set holding the digests of `keys`."""
        return cls(tuple(digest_key(key) for key in keys))

    def __post_init__(self) -> None:
        if not self.digests:
            raise ValueError("api keys: got none; the server never runs open (pass --api-key or set MOR_API_KEYS)")

    def check(self, authorization: str | None) -> None:
        """Accept `Bearer <key>` for a known key; raise `APIError(401)` otherwise."""
        if not authorization:
            raise APIError(
                401,
                "Authorization: missing; send the header 'Authorization: Bearer <api key>' "
                "(the key printed by mor serve or set with --api-key / MOR_API_KEYS)",
                code="invalid_api_key",
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                f"Authorization: must be 'Bearer <api key>'; the scheme was {scheme[:16]!r}",
                code="invalid_api_key",
            )
        presented = digest_key(token.strip())
        matched = False
        for digest in self.digests:  # compare with every digest: the time does not depend on which one matches
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            raise APIError(
                401,
                "Authorization: incorrect API key provided; use a key given to mor serve with "
                "--api-key or MOR_API_KEYS",
                code="invalid_api_key",
            )
