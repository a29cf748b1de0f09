"""Caps as ceilings: before a model request, the most it could cost, and a ``max_tokens``
small enough that the most it could cost fits what the caps leave.

A request's bill is its prompt (at most every token billed at the dearest input rate,
a cache write) plus its output (at most ``max_tokens``). With the prompt's size known
(the provider counts it, or ``prompt_bound`` over-counts it) that worst case is exact
arithmetic, so lowering ``max_tokens`` until it fits means no answer can overspend; and
when not even a minimal answer fits, the request is not sent at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from tui.core.money.pricing import MILLION, ModelRates
from tui.core.providers.base import ModelRequest

MIN_ANSWER_TOKENS = 64  # below this an answer is of no use: stop instead of sending
MESSAGE_OVERHEAD_TOKENS = 16  # role and framing tokens per message, generously
# The system prompt the API adds when tools are offered is a few hundred tokens
# (documented per model); reserved in full here.
TOOL_PROMPT_TOKENS = 1024


def prompt_bound(request: ModelRequest) -> int:
    """At least as many tokens as the request's prompt can count: every token covers at
    least one byte of UTF-8, so the bytes of the JSON that carries the prompt (its
    quoting and keys included) bound the tokens of what it carries."""
    body = json.dumps([request.system, request.messages, request.tools], ensure_ascii=False)
    tokens = len(body.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS * (len(request.messages) + 1)
    return tokens + (TOOL_PROMPT_TOKENS if request.tools else 0)


def worst_rates(rates: ModelRates, prompt_tokens: int) -> tuple[Decimal, Decimal]:
    """(input, output) USD per million tokens at their dearest for a prompt this long: each
    prompt token as a cache write if that costs more, and the long-prompt band's rates
    when the prompt may be past its threshold."""
    bands = [rates]
    if rates.long_prompt is not None and prompt_tokens > rates.long_prompt.above_tokens:
        bands.append(rates.long_prompt.rates)
    per_input = max(max(b.input, b.cache_write_5m, b.cache_write_1h) for b in bands)
    per_output = max(b.output for b in bands)
    return per_input, per_output


@dataclass(frozen=True)
class Plan:
    """What a request may be sent with: its ``max_tokens`` and the most it can cost."""

    max_tokens: int
    worst_case: Decimal


def fit(
    rates: ModelRates, prompt_tokens: int, wanted_max_tokens: int, left: Decimal | None
) -> Plan | None:
    """The request's plan under ``left`` dollars (None: no cap), or None when not even
    ``MIN_ANSWER_TOKENS`` of output fit."""
    per_input, per_output = worst_rates(rates, prompt_tokens)
    prompt_cost = prompt_tokens * per_input / MILLION
    max_tokens = wanted_max_tokens
    if left is not None:
        if per_output > 0:
            affordable = ((left - prompt_cost) * MILLION / per_output).to_integral_value(
                rounding=ROUND_FLOOR
            )
            max_tokens = min(wanted_max_tokens, int(max(affordable, Decimal(-1))))
        elif prompt_cost > left:
            max_tokens = -1
        if max_tokens < min(MIN_ANSWER_TOKENS, wanted_max_tokens):
            return None
    return Plan(max_tokens, prompt_cost + max_tokens * per_output / MILLION)
