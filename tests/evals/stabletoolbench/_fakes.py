"""Deterministic stand-ins for what cannot run here: a real OpenAI-compatible HTTP server with canned replies
(the simulator and judge models), and scripted chat targets (the model under test)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mor.evals.target import TargetCall, TargetReply

Reply = Callable[[dict[str, Any]], dict[str, Any] | str]


class FakeChatServer:
    """`POST /v1/chat/completions` on 127.0.0.1 answering with `reply(request_body)`: an assistant message dict,
    or a string taken as the message content. Every request body is kept in `requests`; a reply of
    `{"__status__": 500}` answers with that HTTP status instead."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    message = outer.reply(body)
                status = 200
                if isinstance(message, str):
                    message = {"role": "assistant", "content": message}
                if "__status__" in message:
                    status, payload = int(message["__status__"]), {"error": {"message": "canned failure"}}
                else:
                    message = {"role": "assistant", "content": None, **message}
                    payload = {
                        "id": f"chatcmpl-{len(outer.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The base URL in the openai client's convention (ending in /v1)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def tool_call_message(name: str, arguments: Mapping[str, Any], content: str | None = None) -> dict[str, Any]:
    """An assistant message calling one function."""
    return {
        "content": content,
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        ],
    }


def judge_message(status: str, reason: str = "canned", name: str = "check_answer_status") -> dict[str, Any]:
    """A judge reply: the forced status function called with `status` (Solved / Unsolved / Unsure)."""
    return tool_call_message(name, {"answer_status": status, "reason": reason})


def call(name: str, /, **arguments: Any) -> TargetCall:
    """A target call."""
    return TargetCall(name=name, arguments=arguments)


def finish(answer: str) -> TargetReply:
    """A reply finishing with `answer`."""
    return TargetReply(calls=[call("Finish", return_type="give_answer", final_answer=answer)])


def give_up() -> TargetReply:
    """A reply giving up."""
    return TargetReply(calls=[call("Finish", return_type="give_up_and_restart")])


Script = Callable[[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]], TargetReply]


class ScriptedTarget:
    """A deterministic `ChatTarget`: replies from a list, in order, or from a function of the request."""

    name = "scripted"

    def __init__(self, script: Script | Sequence[TargetReply]) -> None:
        self._script = script
        self.requests: list[list[dict[str, Any]]] = []
        self.tools_seen: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str = "auto",
    ) -> TargetReply:
        with self._lock:
            self.requests.append([dict(m) for m in messages])
            self.tools_seen.append([dict(t) for t in tools])
            index = len(self.requests) - 1
        if callable(self._script):
            return self._script(messages, tools)
        if index >= len(self._script):
            raise AssertionError(f"ScriptedTarget: asked {index + 1} times, scripted {len(self._script)} replies")
        return self._script[index]


def example_arguments(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The required parameters of an OpenAI tool filled with their documented example values."""
    parameters = tool["function"]["parameters"]
    properties = parameters.get("properties", {})
    return {name: properties[name].get("example_value", "x") for name in parameters.get("required", [])}


class ExampleTarget:
    """A deterministic agent for whole runs: calls the query's first function with its example arguments, then
    finishes with an answer quoting the observation (or saying that the call failed)."""

    name = "example-agent"

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str = "auto",
    ) -> TargetReply:
        observations = [m for m in messages if m.get("role") == "tool"]
        if not observations:
            first = tools[0]
            return TargetReply(calls=[TargetCall(first["function"]["name"], example_arguments(first))])
        observation = json.loads(observations[-1]["content"])
        if observation["error"]:
            return finish("The API call did not return anything usable.")
        return finish(f"Here is what I found: {json.dumps(observation['response'])}")
