"""The HTTP API of the served agent (FastAPI): `/v1/chat/completions`, `/v1/models`, `/health`.

Every error, including unknown routes, wrong methods and unexpected failures, is answered in OpenAI's error shape;
a bad request is a 4xx naming the field, never a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mor.serve.auth import KeySet
from mor.serve.errors import APIError, error_body
from mor.serve.protocol import ChatRequest, parse_chat_request
from mor.serve.responses import (
    ResponseIds,
    chunk,
    completion,
    done_event,
    error_event,
    model_list,
    sse,
    tool_calls,
)
from mor.serve.runtime import AgentRuntime, Answer, Decision, TurnPlan

__all__ = ["build_api"]

_LOG = logging.getLogger("mor.serve.api")


def _error_response(error: APIError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _extra(plan: TurnPlan, decision: Decision) -> dict[str, Any]:
    """The `mor` field of a response: what the gate decided, tokens per role, and the request's token budget."""
    return {
        "decision": decision.kind,
        "role_tokens": dict(decision.usage.by_role),
        "max_completion_tokens": plan.budget,
    }


async def _stream(runtime: AgentRuntime, plan: TurnPlan, decision: Decision, ids: ResponseIds) -> AsyncIterator[bytes]:
    thought = decision.thought
    try:
        if decision.kind == "tool_calls":
            content = thought if runtime.args.thought_in_content else None
            yield sse(chunk(ids, {"role": "assistant", "content": content, "reasoning_content": thought}))
            yield sse(chunk(ids, {"tool_calls": tool_calls(decision.calls, with_index=True)}))
            yield sse(chunk(ids, {}, finish_reason="tool_calls", usage=decision.usage.to_openai()))
        elif decision.kind == "length":
            yield sse(chunk(ids, {"role": "assistant", "content": None, "reasoning_content": thought}))
            yield sse(chunk(ids, {}, finish_reason="length", usage=decision.usage.to_openai()))
        else:
            yield sse(chunk(ids, {"role": "assistant", "content": "", "reasoning_content": thought}))
            finish = "stop"
            async for item in runtime.stream_answer(plan, decision):
                if isinstance(item, Answer):
                    finish = item.finish_reason
                else:
                    yield sse(chunk(ids, {"content": item}))
            yield sse(chunk(ids, {}, finish_reason=finish, usage=decision.usage.to_openai()))
        if plan.include_usage:  # OpenAI's extra chunk without choices
            yield sse(chunk(ids, {}, usage=decision.usage.to_openai(), with_choice=False))
    except APIError as error:
        yield error_event(error.body())
    except Exception as error:  # the status line is gone: report in-band, keep the replica alive
        _LOG.exception("streaming failed")
        yield error_event(error_body(f"internal error: {type(error).__name__}", status=500, code="internal_error"))
    yield done_event()


def _request_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema for the OpenAPI document, and the component schemas it refers to."""
    schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})


def build_api(runtime: AgentRuntime, keys: KeySet) -> FastAPI:
    """The FastAPI app serving `runtime`, accepting the API keys of `keys`."""
    app = FastAPI(
        title="mor agent",
        description="OpenAI-compatible chat completions with tool calling, served by a Mixture-of-Roles agent.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    body_schema, components = _request_schema()
    started = int(time.time())
    args = runtime.args

    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = (
                f"{request.method} {request.url.path}: no such route; use POST /v1/chat/completions, "
                "GET /v1/models or GET /health"
            )
        elif error.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        else:
            message = str(error.detail)
        return JSONResponse(
            error_body(message, status=error.status_code, code="not_found" if error.status_code == 404 else None),
            status_code=error.status_code,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        _LOG.exception("unexpected error")
        return JSONResponse(
            error_body(f"internal error: {type(error).__name__}", status=500, code="internal_error"), status_code=500
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and load: no key needed."""
        stats = runtime.engine.stats
        return {
            "status": "ok" if runtime.engine.alive else "engine stopped",
            "model": runtime.model_name,
            "pending": runtime.engine.pending(),
            "batching": {
                "mode": runtime.engine.mode,
                "decode_forwards": stats.decode_forwards,
                "mixed_role_forwards": stats.mixed_role_forwards,
                "mean_rows_per_decode": round(stats.mean_rows_per_decode, 2),
                "generated_tokens": stats.generated_tokens,
            },
        }

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        """The served model."""
        keys.check(request.headers.get("authorization"))
        return model_list(runtime.model_name, started)

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        """One model."""
        keys.check(request.headers.get("authorization"))
        if model_id != runtime.model_name:
            raise APIError(
                404,
                f"model: got {model_id!r}, this server serves {runtime.model_name!r}",
                param="model",
                code="model_not_found",
            )
        return model_list(runtime.model_name, started)["data"][0]

    @app.post(
        "/v1/chat/completions",
        response_model=None,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def chat_completions(request: Request) -> Response:
        """One role-gated turn: tool calls to run, or the final answer (streamed with `stream: true`)."""
        keys.check(request.headers.get("authorization"))
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind not in ("application/json", ""):
            raise APIError(415, f"Content-Type: got {kind!r}, must be application/json", code="unsupported_media_type")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > args.max_request_bytes:
            raise APIError(
                413,
                f"body: {declared} bytes is more than the limit of {args.max_request_bytes}; send a "
                "shorter conversation",
                code="request_too_large",
            )
        body = bytearray()
        async for part in request.stream():
            body.extend(part)
            if len(body) > args.max_request_bytes:
                raise APIError(
                    413,
                    f"body: more than the limit of {args.max_request_bytes} bytes; send a shorter conversation",
                    code="request_too_large",
                )
        parsed = parse_chat_request(bytes(body))
        plan = runtime.prepare(parsed)
        ids = ResponseIds(runtime.model_name)
        decision = await runtime.decide(plan)
        if plan.stream:
            return StreamingResponse(
                _stream(runtime, plan, decision, ids),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        if decision.kind == "tool_calls":
            content = decision.thought if args.thought_in_content else None
            body_out = completion(
                ids,
                content=content,
                thought=decision.thought,
                calls=decision.calls,
                finish_reason="tool_calls",
                usage=decision.usage.to_openai(),
                extra=_extra(plan, decision),
            )
        elif decision.kind == "length":
            body_out = completion(
                ids,
                content=None,
                thought=decision.thought,
                calls=[],
                finish_reason="length",
                usage=decision.usage.to_openai(),
                extra=_extra(plan, decision),
            )
        else:
            answer = await runtime.answer(plan, decision)
            body_out = completion(
                ids,
                content=answer.content,
                thought=decision.thought,
                calls=[],
                finish_reason=answer.finish_reason,
                usage=decision.usage.to_openai(),
                extra=_extra(plan, decision),
            )
        return JSONResponse(body_out)

    openapi = app.openapi

    def openapi_with_request_schemas() -> dict[str, Any]:
        document = openapi()
        document.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return document

    app.openapi = openapi_with_request_schemas  # type: ignore[method-assign]
    return app
