"""Where tokens come from, and the token file of an embedded cluster."""

from __future__ import annotations

import stat
from pathlib import Path

from mor.cluster import auth_headers, resolve_token
from mor.cluster.auth import create_token_file, read_token


def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "ray" / "auth_token"
    token = create_token_file(path)
    assert len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert create_token_file(path) == token
    assert read_token(path) == token
    assert read_token(tmp_path / "missing") is None


def test_resolve_token_follows_rays_order(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home")
    assert resolve_token({"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(token_file)}, home) == "from-env"
    assert resolve_token({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home) == "from-file"
    assert resolve_token({}, home) == "from-home"
    assert resolve_token({}, tmp_path / "nobody") is None


def test_auth_headers() -> None:
    assert auth_headers("abc") == {"Authorization": "Bearer abc"}
    assert auth_headers(None) == {}
    assert auth_headers("") == {}
