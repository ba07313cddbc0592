"""The virtual API server: a local HTTP service that answers StableToolBench tool calls.

A call is answered from the response cache when it holds the call (same route, same canonical arguments); on a
miss, from the configured simulator, whose answer is then cached; with no simulator, with an error observation
saying the response is not cached. Errors are observations (HTTP 200), as a real API's would be; only malformed
requests get HTTP 400.

Endpoints:
- `POST /v1/call` `{"category", "tool_name", "api_name", "arguments": {...}}` →
  `{"error": "", "response": ..., "source": "cache" | "simulator" | "none"}`
- `POST /virtual` the benchmark's own request shape (`tool_input` as a JSON string or object) →
  `{"error", "response"}`, so the benchmark's inference code can use this server too
- `GET /health` → `{"status": "ok", "simulator": bool, "apis": n, "cached": n}`

Run one with `python -m mor.evals.stabletoolbench.server --data-dir DIR` (see `main`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mor.evals.stabletoolbench.cache import ResponseCache
from mor.evals.stabletoolbench.data import ApiCatalog, ApiRoute, load_catalog
from mor.evals.stabletoolbench.llm import LlmEndpoint, LlmError
from mor.evals.stabletoolbench.simulator import LlmSimulator, Simulator

__all__ = ["ApiAnswer", "ServerStats", "VirtualApiServer", "main"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiAnswer:
    """One call's answer: the API's error text (empty when it succeeded), its response, and where it came from."""

    error: str
    response: Any
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of `/v1/call`."""
        return {"error": self.error, "response": self.response, "source": self.source}


@dataclass
class ServerStats:
    """Counts of answered calls by source."""

    cache_hits: int = 0
    simulated: int = 0
    not_cached: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str) -> None:
        """Count one call under `name`."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def to_dict(self) -> dict[str, int]:
        """The counts as plain data."""
        return {
            "cache_hits": self.cache_hits,
            "simulated": self.simulated,
            "not_cached": self.not_cached,
            "errors": self.errors,
        }


class _RequestError(ValueError):
    """A malformed request (HTTP 400)."""


class VirtualApiServer:
    """The virtual API server over a response cache, an optional simulator and the catalog of API docs.

    Use as a context manager (`with VirtualApiServer(...) as server: server.url`) or `start()`/`stop()`;
    `serve_forever()` blocks (the service form). `port=0` takes a free port.
    """

    def __init__(
        self,
        cache: ResponseCache | Path,
        *,
        catalog: ApiCatalog | None = None,
        simulator: Simulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.cache = cache if isinstance(cache, ResponseCache) else ResponseCache(Path(cache))
        self.catalog = catalog if catalog is not None else ApiCatalog()
        self.simulator = simulator
        self.stats = ServerStats()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. `http://127.0.0.1:38211`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, route: ApiRoute, arguments: Mapping[str, Any]) -> ApiAnswer:
        """Answer one call: cache, else simulator (and cache its answer), else a not-cached error."""
        cached = self.cache.get(route, arguments)
        if cached is not None:
            self.stats.add("cache_hits")
            return ApiAnswer(str(cached.get("error") or ""), cached.get("response", ""), "cache")
        if self.simulator is None:
            self.stats.add("not_cached")
            return ApiAnswer(
                f"not cached: the response cache holds no response of {route.key} for these arguments and no API "
                "simulator is configured; configure one (an OpenAI-compatible endpoint) or fill the cache",
                "",
                "none",
            )
        doc = self.catalog.find(route)
        if doc is None:
            self.stats.add("errors")
            return ApiAnswer(
                f"unknown API: {route.key} is not in the server's catalog of API docs, so it cannot be simulated; "
                "start the server with the data dir of the benchmark that offers it",
                "",
                "none",
            )
        try:
            result = self.simulator.simulate(doc, arguments, self.cache.examples(route))
        except LlmError as error:
            self.stats.add("errors")
            return ApiAnswer(f"simulator unavailable: {error}", "", "none")
        error_text = str(result.get("error") or "")
        if error_text:
            self.stats.add("errors")
        else:
            self.cache.put(route, arguments, {"error": "", "response": result.get("response", "")})
            self.stats.add("simulated")
        return ApiAnswer(error_text, result.get("response", ""), "simulator")

    def start(self) -> VirtualApiServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="stb-virtual-api", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> VirtualApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _route(body: Mapping[str, Any]) -> ApiRoute:
    missing = [key for key in ("category", "tool_name", "api_name") if not isinstance(body.get(key), str)]
    if missing:
        raise _RequestError(
            f"request body: missing or non-string {', '.join(missing)}; "
            'e.g. {"category": "Data", "tool_name": "theclique", "api_name": "transfermarkt_search", '
            '"arguments": {"name": "messi"}}'
        )
    return ApiRoute(category=body["category"], tool=body["tool_name"], api=body["api_name"])


def _benchmark_arguments(tool_input: Any) -> dict[str, Any] | None:
    """The benchmark's `tool_input` (a JSON string, "" or an object) as arguments; None when unreadable."""
    if isinstance(tool_input, dict):
        return tool_input
    if tool_input in ("", None):
        return {}
    try:
        value = json.loads(tool_input)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _handler_for(server: VirtualApiServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and delayed ACKs add ~40 ms
            # to every keep-alive request.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            _log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: Mapping[str, Any]) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _RequestError(f"request body: not JSON ({raw[:80]!r}); send a JSON object") from None
            if not isinstance(body, dict):
                raise _RequestError(f"request body: expected a JSON object, got {type(body).__name__}")
            return body

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") == "/health":
                self._send(
                    200,
                    {
                        "status": "ok",
                        "simulator": server.simulator is not None,
                        "apis": len(server.catalog),
                        "cached": server.cache.count(),
                        "stats": server.stats.to_dict(),
                    },
                )
            else:
                self._send(404, {"error": f"path {self.path!r}: not found; use POST /v1/call or GET /health"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.rstrip("/")
            try:
                if path not in ("/v1/call", "/virtual"):
                    self._send(404, {"error": f"path {self.path!r}: not found; use POST /v1/call"})
                    return
                body = self._body()
                route = _route(body)
                if path == "/v1/call":
                    arguments = body.get("arguments", {})
                    if not isinstance(arguments, dict):
                        answer = ApiAnswer(
                            f"arguments: expected a JSON object, got {type(arguments).__name__}", "", "none"
                        )
                    else:
                        answer = server.answer(route, arguments)
                    self._send(200, answer.to_dict())
                    return
                arguments = _benchmark_arguments(body.get("tool_input", {}))
                if arguments is None:
                    self._send(
                        200, {"error": "Tool input parse error: tool_input is not a JSON object", "response": ""}
                    )
                    return
                answer = server.answer(route, arguments)
                self._send(200, {"error": answer.error, "response": answer.response})
            except _RequestError as error:
                self._send(400, {"error": str(error)})
            except Exception as error:  # a handler must answer; the log keeps the trace
                _log.exception("virtual API server: request failed")
                self._send(500, {"error": f"internal error: {type(error).__name__}: {error}"})

    return _Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the virtual API server until interrupted (defaults from `Settings`: benchmarks dir, cache dir)."""
    from mor.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m mor.evals.stabletoolbench.server", description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, default=None, help="directory holding stabletoolbench/")
    parser.add_argument("--cache-dir", type=Path, default=None, help="response cache directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--simulator-url", default=None, help="OpenAI-compatible base URL, e.g. http://h:8000/v1")
    parser.add_argument("--simulator-model", default=None, help="model name at the simulator endpoint")
    parser.add_argument(
        "--simulator-api-key-env",
        default="MOR_SIMULATOR_API_KEY",
        help="environment variable holding the simulator's API key",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    data_dir = args.data_dir or settings.benchmarks_dir
    if data_dir is None:
        parser.error(
            "--data-dir: not given and MOR_BENCHMARKS_DIR is not set; give the directory holding "
            "stabletoolbench/, e.g. --data-dir ../shared/benchmarks"
        )
    simulator: Simulator | None = None
    if args.simulator_url:
        if not args.simulator_model:
            parser.error("--simulator-model: required with --simulator-url; e.g. --simulator-model gpt-4o-mini")
        endpoint = LlmEndpoint(args.simulator_url, args.simulator_model, os.environ.get(args.simulator_api_key_env))
        simulator = LlmSimulator(endpoint)
    cache_dir = args.cache_dir or settings.cache_dir / "stabletoolbench"
    logging.basicConfig(level=logging.INFO)
    server = VirtualApiServer(
        cache_dir, catalog=load_catalog(data_dir), simulator=simulator, host=args.host, port=args.port
    )
    _log.info("virtual API server on %s (cache %s, simulator %s)", server.url, cache_dir, args.simulator_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
