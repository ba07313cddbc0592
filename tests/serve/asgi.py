"""Calling the FastAPI app in process (httpx's ASGI transport): no sockets, no Ray."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

KEY = "test-key-0123456789"
MODEL = "tiny-agent"


def request(
    app: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = KEY,
) -> httpx.Response:
    """One request to `app` (JSON `body` or `raw` bytes), with the test key unless `key` is None."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            all_headers = {"Authorization": f"Bearer {key}"} if key else {}
            all_headers.update(headers or {})
            content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            if content is not None:
                all_headers.setdefault("Content-Type", "application/json")
            return await client.request(method, path, content=content, headers=all_headers)

    return asyncio.run(call())
