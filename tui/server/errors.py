"""Errors as the API answers them: the hosted API's envelope
``{"type": "error", "error": {"type": ..., "message": ...}}`` with the status that goes
with it, for corral's own errors as much as for bad requests."""

from __future__ import annotations

from starlette.requests import Request

from tui.core.errors import CorralError, NotFoundError, StoreBusyError
from tui.core.printable import printable_line
from tui.server.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.exit_code = exit_code  # what corral's own CLI exits with for it


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found_error", what)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def envelope(status: int, kind: str, message: str, exit_code: int = 1) -> JSONResponse:
    error = {"type": kind, "message": printable_line(message), "corral": {"exit_code": exit_code}}
    return JSONResponse({"type": "error", "error": error}, status_code=status)


def from_corral(exc: CorralError) -> ApiError:
    """The status and type a corral error answers with."""
    if isinstance(exc, NotFoundError):
        status, kind = 404, "not_found_error"
    elif isinstance(exc, StoreBusyError):
        status, kind = 409, "conflict_error"
    else:  # a request corral cannot carry out as asked: the message says why
        status, kind = 400, "invalid_request_error"
    return ApiError(status, kind, str(exc), exc.exit_code)


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return envelope(exc.status, exc.kind, exc.message, exc.exit_code)


async def on_corral_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CorralError)
    error = from_corral(exc)
    return envelope(error.status, error.kind, error.message, error.exit_code)
