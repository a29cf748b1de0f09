"""Amounts of money (and of hours) as people type them: decimal strings, bounded, never
floats, refused in one line when they are not sane."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tui.core.errors import SpecError

MAX_USD = Decimal("1000000")  # a cap or amount above a million dollars is a typo


MAX_HOURS = Decimal("100000")


def parse_money(value: Any, source: str, key: str, *, maximum: Decimal = MAX_USD) -> Decimal:
    """USD as a string ("0.50") or an integer; floats are refused so no rounding sneaks in.

    The range is bounded (0 to ``maximum``, at most 6 decimal places): ``1e999999999`` is
    a decimal too, and would make later arithmetic and formatting slow or fail.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(source, key, 'must be a decimal string such as "0.50" (USD)')
    text = str(value).strip()
    if len(text) > 40:
        raise SpecError(source, key, "is too long to be an amount")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise SpecError(source, key, f"{text!r} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0 or amount > maximum:
        raise SpecError(source, key, f"must be an amount from 0 to {maximum}")
    if amount != amount.quantize(Decimal("0.000001"), rounding="ROUND_DOWN"):
        raise SpecError(source, key, "has more than 6 decimal places")
    return amount
