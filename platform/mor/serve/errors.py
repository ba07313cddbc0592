"""Errors of the served agent in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

from typing import Any

__all__ = ["APIError", "error_body"]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


def error_body(
    message: str, *, status: int = 400, param: str | None = None, code: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    """The JSON body OpenAI servers return for an error."""
    return {
        "error": {
            "message": message,
            "type": type_ or _TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


class APIError(Exception):
    """An error answered to the client with an HTTP status and an OpenAI error body.

    The message names the field, the value, the rule and a fix, like every error of mor.
    """

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, type_: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type_ = type_

    def body(self) -> dict[str, Any]:
        """The OpenAI error body of this error."""
        return error_body(self.message, status=self.status, param=self.param, code=self.code, type_=self.type_)
