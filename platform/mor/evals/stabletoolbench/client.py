"""The runner's client of the virtual API server: one call in, one observation out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mor.evals.stabletoolbench.data import ApiRoute

__all__ = ["Observation", "VirtualApiClient"]


@dataclass(frozen=True)
class Observation:
    """What a tool call returned: the API's error text (empty on success), its response, and its source."""

    error: str
    response: Any
    source: str = "none"

    @property
    def ok(self) -> bool:
        """True when the API answered without an error."""
        return not self.error

    def text(self, max_chars: int | None = None) -> str:
        """The observation as the model sees it: `{"error": ..., "response": ...}` as JSON, cut to `max_chars`."""
        text = json.dumps({"error": self.error, "response": self.response}, ensure_ascii=False)
        return text if max_chars is None or len(text) <= max_chars else text[:max_chars] + "..."


class VirtualApiClient:
    """Calls the virtual API server at `url` (e.g. `http://127.0.0.1:8080`)."""

    def __init__(self, url: str, *, timeout_s: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def call(self, route: ApiRoute, arguments: Mapping[str, Any]) -> Observation:
        """Call one API; transport failures come back as error observations naming the server."""
        body = {
            "category": route.category,
            "tool_name": route.tool,
            "api_name": route.api,
            "arguments": dict(arguments),
        }
        try:
            response = self._http.post(f"{self.url}/v1/call", json=body)
        except httpx.HTTPError as error:
            return Observation(f"virtual API server at {self.url} unreachable: {type(error).__name__}: {error}", "")
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            detail = data.get("error") if isinstance(data, dict) else response.text[:200]
            return Observation(f"virtual API server answered HTTP {response.status_code}: {detail}", "")
        return Observation(str(data.get("error") or ""), data.get("response", ""), str(data.get("source", "none")))

    def health(self) -> dict[str, Any]:
        """The server's health report; raises `httpx.HTTPError` when it is not up."""
        response = self._http.get(f"{self.url}/health")
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> VirtualApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
