"""Errors as the API answers them: the hosted API's envelope
``{"type": "error", "error": {"type": ..., "message": ...}}`` with the status that goes
with it, for corral's own errors as much as for bad requests."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from tui.core.errors import CorralError, NotFoundError, StoreBusyError
from tui.core.printable import printable_line
from tui.core.session.definitions import InvalidRequest, NotSupported


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found_error", what)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def envelope(status: int, kind: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": printable_line(message)}}
    return JSONResponse(body, status_code=status)


def from_corral(exc: CorralError) -> ApiError:
    """The status and type a corral error answers with."""
    if isinstance(exc, NotFoundError):
        return not_found(str(exc))
    if isinstance(exc, NotSupported | InvalidRequest):
        return invalid(str(exc))
    if isinstance(exc, StoreBusyError):
        return ApiError(409, "conflict_error", str(exc))
    kind = getattr(exc, "kind", None)
    if kind == "model_not_budgetable":
        return ApiError(400, "invalid_request_error", str(exc))
    return invalid(str(exc))


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return envelope(exc.status, exc.kind, exc.message)


async def on_corral_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CorralError)
    error = from_corral(exc)
    return envelope(error.status, error.kind, error.message)
