"""Prices tokens and session-hours from the dated table in ``pricing.toml`` beside it.

Money is ``Decimal`` USD throughout; nothing here touches a float.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

MILLION = Decimal(1_000_000)
SECONDS_PER_HOUR = Decimal(3600)


@dataclass(frozen=True)
class ModelRates:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


@dataclass(frozen=True)
class PricingTable:
    as_of: str
    models: dict[str, ModelRates]
    aliases: dict[str, str]
    session_hour: Decimal
    hosted_session_hour: Decimal

    def rates(self, model: str) -> ModelRates | None:
        """Rates for a model id, or None when the table does not know it."""
        model = self.aliases.get(model, model)
        return self.models.get(model)

    def token_cost(self, model: str, usage: dict[str, Any]) -> Decimal | None:
        """The list cost of one request's ``model_usage``; None when the model is unknown.

        Cache creation is split by lifetime when the usage says so; otherwise it is
        priced at the 5-minute rate (the API's default lifetime).
        """
        rates = self.rates(model)
        if rates is None:
            return None
        creation = int(usage.get("cache_creation_input_tokens", 0))
        one_hour = int(usage.get("ephemeral_1h_input_tokens", 0))
        five_min = creation - one_hour
        total = (
            int(usage.get("input_tokens", 0)) * rates.input
            + int(usage.get("output_tokens", 0)) * rates.output
            + int(usage.get("cache_read_input_tokens", 0)) * rates.cache_read
            + five_min * rates.cache_write_5m
            + one_hour * rates.cache_write_1h
        )
        return total / MILLION

    def cache_saving(self, model: str, usage: dict[str, Any]) -> Decimal | None:
        """What caching saved on one request against sending everything as plain input
        (reads are cheaper; writes cost a premium, subtracted here)."""
        rates = self.rates(model)
        if rates is None:
            return None
        creation = int(usage.get("cache_creation_input_tokens", 0))
        one_hour = int(usage.get("ephemeral_1h_input_tokens", 0))
        saved = (
            int(usage.get("cache_read_input_tokens", 0)) * (rates.input - rates.cache_read)
            - (creation - one_hour) * (rates.cache_write_5m - rates.input)
            - one_hour * (rates.cache_write_1h - rates.input)
        )
        return saved / MILLION

    def runtime_cost(self, active_seconds: Decimal, *, hosted: bool = False) -> Decimal:
        rate = self.hosted_session_hour if hosted else self.session_hour
        return active_seconds * rate / SECONDS_PER_HOUR


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def parse_pricing(data: dict[str, Any]) -> PricingTable:
    models = {
        name: ModelRates(**{k: _money(v) for k, v in rates.items()})
        for name, rates in data.get("models", {}).items()
    }
    return PricingTable(
        as_of=data["as_of"],
        models=models,
        aliases=dict(data.get("aliases", {})),
        session_hour=_money(data.get("session_hour", "0")),
        hosted_session_hour=_money(data.get("hosted_session_hour", "0.08")),
    )


@cache
def default_pricing() -> PricingTable:
    text = resources.files("tui.core.money").joinpath("pricing.toml").read_text("utf-8")
    return parse_pricing(tomllib.loads(text))


def format_usd(amount: Decimal | None, places: int = 4) -> str:
    """Human text for money: ``$0.0123``; unknown cost reads as ``unknown``."""
    if amount is None:
        return "unknown"
    return f"${amount.quantize(Decimal(1).scaleb(-places))}"
