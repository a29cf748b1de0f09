"""Cursor pagination as the SDK's page types expect it: ``{"data": [...], "next_page": ...}``
(and ``prev_page`` for the bidirectional kind). A cursor is opaque to the caller: here the
sort key of the last item it saw, so inserts between pages never repeat or skip one."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request

from tui.server.errors import invalid

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def limit_of(request: Request, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit: must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit: must be from 1 to {MAX_LIMIT}")
    return limit


def encode(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(token: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise invalid("page: not a cursor this server gave") from None


def page(
    items: Sequence[T],
    key: Callable[[T], Any],
    request: Request,
    shape: Callable[[T], dict[str, Any]],
    *,
    descending: bool = False,
    bidirectional: bool = False,
) -> dict[str, Any]:
    """One page of ``items`` (sorted by ``key``, in the requested direction)."""
    token = request.query_params.get("page")
    limit = limit_of(request)
    ordered = sorted(items, key=key, reverse=descending)
    if token:
        after = decode(token)
        ordered = [
            i
            for i in ordered
            if (_cmp(key(i)) < _cmp(after) if descending else _cmp(key(i)) > _cmp(after))
        ]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    body: dict[str, Any] = {
        "data": [shape(i) for i in chosen],
        "next_page": encode(key(chosen[-1])) if more and chosen else None,
    }
    if bidirectional:
        body["prev_page"] = None
    return body


def _cmp(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
