"""Prices tokens and session-hours from the dated table in ``pricing.toml`` beside it,
optionally overridden by ``pricing.toml`` in the data dir.

Money is ``Decimal`` USD throughout; nothing here touches a float. A model the table
cannot price costs ``None`` (shown as "unknown"), never $0, and a session budget on it is
refused (``model_not_budgetable``): a cap that cannot see spending would never trip.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from threading import Lock
from typing import Annotated, Any, Literal, get_args, get_origin

from tui.core.errors import CorralError, SpecError
from tui.core.money.amounts import parse_money
from tui.core.printable import printable_line
from tui.core.small_files import read_small_file

log = logging.getLogger("corral.pricing")

MILLION = Decimal(1_000_000)
SECONDS_PER_HOUR = Decimal(3600)

OVERRIDE_NAME = "pricing.toml"  # in the data dir, beside corral.db
OVERRIDE_LIMIT = 1 << 20
RATE_KEYS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
TOP_KEYS = frozenset(
    {"as_of", "currency", "session_hour", "hosted_session_hour", "models", "aliases", "unpriced"}
)
MAX_PROMPT_THRESHOLD = 100_000_000  # tokens; far past any context window


class PricingError(CorralError):
    """A pricing table (shipped or the user's override) is malformed."""

    exit_code = 2

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}" if key else source
        super().__init__(printable_line(f"{where}: {problem}"))


class ModelNotBudgetableError(CorralError):
    """A budget was asked for on a model whose price is unknown, so it could not be kept."""

    exit_code = 2
    kind = "model_not_budgetable"  # the hosted API's error for the same request

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        super().__init__(printable_line(f"{model}: {reason}"))


@dataclass(frozen=True)
class ModelRates:
    """USD per million tokens. ``long_prompt``, when set, replaces every rate for a request
    whose prompt is longer than its threshold (Claude Haiku 5.5 bills that way)."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    long_prompt: LongPrompt | None = None

    def for_usage(self, usage: dict[str, Any]) -> ModelRates:
        """The rates one request with this ``model_usage`` is billed at."""
        tier = self.long_prompt
        if tier is not None and prompt_tokens(usage) > tier.above_tokens:
            return tier.rates
        return self


@dataclass(frozen=True)
class LongPrompt:
    above_tokens: int
    rates: ModelRates


def prompt_tokens(usage: dict[str, Any]) -> int:
    """A request's prompt as the prompt-length price bands count it: fresh input plus
    cache reads plus cache writes."""
    return (
        int(usage.get("input_tokens", 0))
        + int(usage.get("cache_read_input_tokens", 0))
        + int(usage.get("cache_creation_input_tokens", 0))
    )


@dataclass(frozen=True)
class PricingTable:
    as_of: str
    models: dict[str, ModelRates]
    aliases: dict[str, str]
    session_hour: Decimal
    hosted_session_hour: Decimal
    # Ids known to have no price we could find, each with the reason (cost stays unknown).
    unpriced: dict[str, str] = field(default_factory=dict)
    # The user's override file when one was applied, or the one-line reason it was not.
    override_path: Path | None = None
    override_error: str | None = None

    def resolve(self, model: str) -> str:
        """A dated or aliased id's base model id."""
        return self.aliases.get(model, model)

    def rates(self, model: str) -> ModelRates | None:
        """Rates for a model id, or None when the table does not price it."""
        return self.models.get(self.resolve(model))

    def unpriced_reason(self, model: str) -> str | None:
        """Why a model the table knows of has no price; None if priced or never heard of."""
        return self.unpriced.get(self.resolve(model))

    def accounts_for(self, model: str) -> bool:
        """Priced, or listed as knowingly unpriced."""
        return self.rates(model) is not None or self.unpriced_reason(model) is not None

    def unaccounted(self, ids: Iterable[str]) -> list[str]:
        """The ids the table neither prices nor lists as unpriced (a new SDK's new models)."""
        return sorted({i for i in ids if not self.accounts_for(i)})

    def token_cost(self, model: str, usage: dict[str, Any]) -> Decimal | None:
        """The list cost of one request's ``model_usage``; None when the model is unknown.

        Cache creation is split by lifetime when the usage says so; otherwise it is
        priced at the 5-minute rate (the API's default lifetime).
        """
        base = self.rates(model)
        if base is None:
            return None
        rates = base.for_usage(usage)
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
        base = self.rates(model)
        if base is None:
            return None
        # The same band as the bill: a prompt sent uncached would have been as long.
        rates = base.for_usage(usage)
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


# -- budgets --------------------------------------------------------------------------


def budgetable(model: str, pricing: PricingTable | None = None) -> bool:
    """Whether a list-cost budget can be kept on ``model``: only if its tokens are priced."""
    return (pricing or default_pricing()).rates(model) is not None


def require_budgetable(model: str, pricing: PricingTable | None = None) -> None:
    """Refuse a budget on a model the table cannot price, in one line, as the hosted API
    does (``model_not_budgetable``): its spend would count as nothing and never stop it."""
    table = pricing or default_pricing()
    if table.rates(model) is not None:
        return
    reason = table.unpriced_reason(model)
    why = reason or f"not in the pricing table (as of {table.as_of})"
    raise ModelNotBudgetableError(
        model,
        f"a budget cannot be kept on this model: its price is unknown ({why});"
        f" drop the budget, or give its rates in {OVERRIDE_NAME} in the data dir",
    )


# -- reading tables -------------------------------------------------------------------


def _money(value: Any, source: str, key: str) -> Decimal:
    try:
        return parse_money(value, source, key)
    except SpecError as exc:
        raise PricingError(exc.source, exc.key, exc.problem) from None


def _table(value: Any, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PricingError(source, key, "must be a table")
    return value


def _text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PricingError(source, key, "must be a non-empty string")
    return value


def _model_id(name: str, source: str, section: str) -> str:
    # Ids are what the API accepts: short ASCII without spaces or control characters.
    if not name or len(name) > 200 or not name.isascii() or not name.isprintable() or " " in name:
        raise PricingError(source, f"{section}.{name!r}", "is not a model id")
    return name


def _rates(data: Any, source: str, key: str, inherit: ModelRates | None = None) -> ModelRates:
    """One model's rates; with ``inherit`` (an override of a priced model) the keys left
    out keep their current value, else all five are required."""
    data = _table(data, source, key)
    unknown = set(data) - set(RATE_KEYS) - {"long_prompt"}
    if unknown:
        raise PricingError(
            source, f"{key}.{sorted(unknown)[0]}", f"unknown key (expected {', '.join(RATE_KEYS)})"
        )
    values: dict[str, Decimal] = {}
    for name in RATE_KEYS:
        if name in data:
            values[name] = _money(data[name], source, f"{key}.{name}")
        elif inherit is not None:
            values[name] = getattr(inherit, name)
        else:
            raise PricingError(source, f"{key}.{name}", "missing (every model needs all five)")
    long_prompt = inherit.long_prompt if inherit is not None else None
    if "long_prompt" in data:
        long_prompt = _long_prompt(data["long_prompt"], source, f"{key}.long_prompt")
    return ModelRates(**values, long_prompt=long_prompt)


def _long_prompt(data: Any, source: str, key: str) -> LongPrompt:
    data = _table(data, source, key)
    above = data.get("above_tokens")
    if isinstance(above, bool) or not isinstance(above, int):
        raise PricingError(source, f"{key}.above_tokens", "must be a whole number of tokens")
    if not 0 < above <= MAX_PROMPT_THRESHOLD:
        raise PricingError(
            source, f"{key}.above_tokens", f"must be from 1 to {MAX_PROMPT_THRESHOLD}"
        )
    rest = {k: v for k, v in data.items() if k != "above_tokens"}
    if "long_prompt" in rest:
        raise PricingError(source, f"{key}.long_prompt", "a price band cannot have its own band")
    return LongPrompt(above, _rates(rest, source, key))


def _check_top(data: dict[str, Any], source: str) -> None:
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise PricingError(
            source,
            sorted(unknown)[0],
            f"unknown key (expected {', '.join(sorted(TOP_KEYS))})",
        )
    if "as_of" in data:
        _text(data["as_of"], source, "as_of")
    if "currency" in data and data["currency"] != "USD":
        raise PricingError(source, "currency", "only USD is supported")


def _merged(base: PricingTable | None, data: dict[str, Any], source: str) -> PricingTable:
    """``data`` laid over ``base`` (None: ``data`` is a whole table): models, aliases and
    unpriced ids replace or add per id; session rates replace."""
    _check_top(data, source)
    models = dict(base.models) if base else {}
    aliases = dict(base.aliases) if base else {}
    unpriced = dict(base.unpriced) if base else {}
    given_models = _table(data.get("models", {}), source, "models")
    given_unpriced = _table(data.get("unpriced", {}), source, "unpriced")
    given_aliases = _table(data.get("aliases", {}), source, "aliases")
    for name, rates in given_models.items():
        _model_id(name, source, "models")
        if name in given_unpriced:
            raise PricingError(source, f"unpriced.{name}", "is also priced under [models]")
        # A dated id given its own price stops following its base model, starting from
        # the base's rates so a partial entry still means "these rates differ".
        inherit = models.get(name) or models.get(aliases.pop(name, ""))
        models[name] = _rates(rates, source, f"models.{name}", inherit)
        unpriced.pop(name, None)  # a price given for a known gap fills it
    for name, reason in given_unpriced.items():
        _model_id(name, source, "unpriced")
        unpriced[name] = _text(reason, source, f"unpriced.{name}")
        models.pop(name, None)  # the user would rather see "unknown" than this price
        aliases.pop(name, None)
    for name, target in given_aliases.items():
        _model_id(name, source, "aliases")
        if name in given_models or name in given_unpriced:
            raise PricingError(source, f"aliases.{name}", "is also given under [models]/[unpriced]")
        aliases[name] = _model_id(_text(target, source, f"aliases.{name}"), source, "aliases")
        models.pop(name, None)
        unpriced.pop(name, None)
    for name, target in aliases.items():
        if name in models or name in unpriced:
            raise PricingError(source, f"aliases.{name}", "is a model id, not an alias")
        if target not in models and target not in unpriced:
            raise PricingError(
                source, f"aliases.{name}", f"names {target!r}, which is not in the table"
            )

    def session_rate(key: str, default: Decimal) -> Decimal:
        return _money(data[key], source, key) if key in data else default

    if base is None:
        as_of = _text(data.get("as_of"), source, "as_of")
        hour, hosted = Decimal(0), Decimal("0.08")
    else:
        as_of, hour, hosted = base.as_of, base.session_hour, base.hosted_session_hour
    return PricingTable(
        as_of=as_of,
        models=models,
        aliases=aliases,
        session_hour=session_rate("session_hour", hour),
        hosted_session_hour=session_rate("hosted_session_hour", hosted),
        unpriced=unpriced,
    )


def parse_pricing(data: dict[str, Any], source: str = "pricing.toml") -> PricingTable:
    """A whole table from its TOML data; PricingError (one line) when it is malformed."""
    return _merged(None, data, source)


def apply_override(base: PricingTable, data: dict[str, Any], source: str) -> PricingTable:
    """``base`` with the user's override file's entries laid over it. A model already
    priced may give only the rates that change; a new one gives all five."""
    return _merged(base, data, source)


@cache
def default_pricing() -> PricingTable:
    """The shipped table (for callers with no data dir)."""
    text = resources.files("tui.core.money").joinpath("pricing.toml").read_text("utf-8")
    return parse_pricing(tomllib.loads(text), "tui/core/money/pricing.toml")


_overrides: dict[Path, tuple[tuple[int, int, int], PricingTable]] = {}
_overrides_lock = Lock()


def load_pricing(data_dir: Path | None) -> PricingTable:
    """The shipped table with ``data_dir/pricing.toml`` laid over it when that exists.

    A bad override never stops corral: it is logged once (a warning on the
    ``corral.pricing`` logger) and the shipped table is returned with ``override_error``
    set to the one-line reason, for the caller to show. Read again when the file changes.
    """
    base = default_pricing()
    if data_dir is None:
        return base
    path = data_dir / OVERRIDE_NAME
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return base
    except OSError as exc:
        return _refused(base, path, exc)
    stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    with _overrides_lock:
        known = _overrides.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
    table = _read_override(base, path)
    with _overrides_lock:
        _overrides[path] = (stamp, table)
    return table


def _read_override(base: PricingTable, path: Path) -> PricingTable:
    try:
        data = tomllib.loads(read_small_file(path, OVERRIDE_LIMIT).decode("utf-8"))
        return replace(apply_override(base, data, str(path)), override_path=path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, PricingError) as exc:
        return _refused(base, path, exc)


def _refused(base: PricingTable, path: Path, exc: Exception) -> PricingTable:
    problem = str(exc) if isinstance(exc, PricingError) else f"{path}: {exc}"
    message = printable_line(" ".join(problem.split())) + " (ignored; using the shipped prices)"
    log.warning("%s", message)
    return replace(base, override_error=message)


# -- the SDK's model list -------------------------------------------------------------


def literal_ids(annotation: Any) -> set[str]:
    """Every string in the ``Literal[...]`` inside ``annotation`` (through Union,
    Optional and Annotated), e.g. the SDK's ``Union[Literal["claude-…", …], str]``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return {arg for arg in get_args(annotation) if isinstance(arg, str)}
    if origin is Annotated:  # the metadata is not part of the type
        return literal_ids(get_args(annotation)[0])
    found: set[str] = set()
    for arg in get_args(annotation):
        found |= literal_ids(arg)
    return found


def sdk_model_ids() -> set[str]:
    """The model ids the installed anthropic SDK names (Messages and Managed Agents)."""
    from anthropic.types.beta.beta_managed_agents_model_config import (
        BetaManagedAgentsModelConfig,
    )
    from anthropic.types.model import Model
    from anthropic.types.model_param import ModelParam

    agents = BetaManagedAgentsModelConfig.model_fields["id"].annotation
    return literal_ids(Model) | literal_ids(ModelParam) | literal_ids(agents)


def format_usd(amount: Decimal | None, places: int = 4) -> str:
    """Human text for money: ``$0.0123``; unknown cost reads as ``unknown``."""
    if amount is None:
        return "unknown"
    return f"${amount.quantize(Decimal(1).scaleb(-places))}"
