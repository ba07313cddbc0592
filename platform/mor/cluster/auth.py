"""Ray token authentication: where a client finds its token and how the local head node gets one.

Ray 2.60 protects the dashboard (and so the Job Submission API) and the GCS with a bearer token when
`RAY_AUTH_MODE=token`. Ray's own processes find the token, in this order, in the `RAY_AUTH_TOKEN` environment
variable, in the file named by `RAY_AUTH_TOKEN_PATH`, or in `~/.ray/auth_token`. Clients of the HTTP job API send
it as `Authorization: Bearer <token>`.

The embedded cluster of one `MOR_HOME` keeps its own token in `<ray_dir>/auth_token` (mode 0600) and starts its
processes with `RAY_AUTH_TOKEN_PATH` pointing at it, so two homes never share a token or a cluster.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

__all__ = ["TOKEN_FILE_NAME", "auth_headers", "create_token_file", "read_token", "resolve_token"]

TOKEN_FILE_NAME = "auth_token"
_TOKEN_ENV = "RAY_AUTH_TOKEN"
_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def create_token_file(path: Path) -> str:
    """Return the token stored at `path`, creating a fresh random one (mode 0600) when the file is missing."""
    if path.is_file():
        token = read_token(path)
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def read_token(path: Path) -> str | None:
    """The token in a token file, or None when the file is missing or empty."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    return token or None


def resolve_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """Find a token the way Ray does: `RAY_AUTH_TOKEN`, then `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`."""
    env = os.environ if environ is None else environ
    if env.get(_TOKEN_ENV, "").strip():
        return env[_TOKEN_ENV].strip()
    if env.get(_TOKEN_PATH_ENV):
        return read_token(Path(env[_TOKEN_PATH_ENV]).expanduser())
    return read_token((home or Path.home()) / ".ray" / TOKEN_FILE_NAME)


def auth_headers(token: str | None) -> dict[str, str]:
    """HTTP headers that authenticate to a Ray dashboard (empty when there is no token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
