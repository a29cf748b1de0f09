"""corral's own values as JSON and back, driven by their type hints: how the app and the
CLI talk to the server in exactly the types the engine uses (records, events, states,
timelines, diffs, budgets, estimates), with nothing written twice per type.

Decoding trusts nothing: a value of the wrong shape is a ``WireError`` naming where,
money must be a finite non-negative decimal, specs and policies go through the same
checks as an import's.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from tui.core.clock import parse_time
from tui.core.errors import CorralError

MAX_AMOUNT = Decimal(10) ** 12  # far over any cap or cost, far under what breaks a Decimal


class WireError(CorralError):
    """A value that is not what its type says."""


def encode(value: Any) -> Any:
    """A JSON-safe copy of ``value``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    special = _SPECIAL.get(type(value))
    if special is not None:
        return special[0](value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise WireError(f"cannot send a {type(value).__name__}")


def decode(hint: Any, data: Any, where: str = "value") -> Any:
    """``data`` (parsed JSON) as a ``hint``, checked all the way down."""
    if hint is Any or hint is object:
        return data
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return decode(option, data, where)
            except WireError as exc:
                errors.append(str(exc))
        raise WireError(errors[0] if errors else f"{where}: unexpected null")
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return [decode(item, v, f"{where}[{i}]") for i, v in enumerate(_is(data, list, where))]
    if origin is tuple:
        args = get_args(hint)
        items = _is(data, list, where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(items))
        if len(args) != len(items):
            raise WireError(f"{where}: expected {len(args)} items")
        pairs = enumerate(zip(args, items, strict=True))
        return tuple(decode(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        key, val = get_args(hint) or (str, Any)
        mapping = _is(data, dict, where)
        if key is str and val is Any:  # an event's payload: the common case, made cheap
            for k in mapping:
                _is(k, str, where)
            return dict(mapping)
        return {decode(key, k, where): decode(val, v, f"{where}.{k}") for k, v in mapping.items()}
    if hint is tuple:
        return tuple(_is(data, list, where))
    return _scalar(hint, data, where)


def _scalar(hint: Any, data: Any, where: str) -> Any:
    if hint is type(None):
        if data is not None:
            raise WireError(f"{where}: expected null")
        return None
    if hint is bool:
        return _is(data, bool, where)
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise WireError(f"{where}: expected a whole number")
        return data
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise WireError(f"{where}: expected a number")
        return float(data)
    if hint is str:
        return _is(data, str, where)
    if hint is Decimal:
        return _amount(data, where)
    if hint is datetime:
        try:
            return parse_time(_is(data, str, where))
        except ValueError:
            raise WireError(f"{where}: not a time") from None
    if hint is Path:
        return Path(_is(data, str, where))
    if hint in _SPECIAL:
        try:
            return _SPECIAL[hint][1](data)
        except (CorralError, KeyError, TypeError, ValueError) as exc:
            raise WireError(f"{where}: {exc}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, data, where)
    raise WireError(f"{where}: cannot read a {getattr(hint, '__name__', hint)}")


def _dataclass(cls: type, data: Any, where: str) -> Any:
    mapping = _is(data, dict, where)
    hints = _hints(cls)
    init, later = {}, {}
    for f in dataclasses.fields(cls):
        if f.name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{where}.{f.name}: missing")
            continue
        value = decode(hints[f.name], mapping[f.name], f"{where}.{f.name}")
        (init if f.init else later)[f.name] = value
    try:
        obj = cls(**init)
    except (TypeError, ValueError) as exc:
        raise WireError(f"{where}: {exc}") from None
    for name, value in later.items():
        object.__setattr__(obj, name, value)
    return obj


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is(data: Any, kind: type, where: str) -> Any:
    if not isinstance(data, kind) or (kind is not bool and isinstance(data, bool)):
        raise WireError(f"{where}: expected {kind.__name__}")
    return data


def _amount(data: Any, where: str) -> Decimal:
    try:
        amount = Decimal(_is(data, str, where))
    except InvalidOperation:
        raise WireError(f"{where}: not a decimal amount") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise WireError(f"{where}: must be a finite amount from 0 to {MAX_AMOUNT}")
    return amount


def _special() -> dict[type, tuple[Any, Any]]:
    """Types with a JSON form of their own, read back through their checks."""
    from tui.core.permissions.policy import Policy, check_policy_data
    from tui.core.session.spec import SessionSpec
    from tui.core.session.spec_reader import check_spec_json

    def policy(data: Any) -> Policy:
        check_policy_data(data)
        return Policy.from_data(data)

    return {
        Policy: (Policy.to_data, policy),
        SessionSpec: (SessionSpec.to_json, lambda data: check_spec_json(data, "request")),
    }


_SPECIAL = _special()
