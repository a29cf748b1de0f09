"""The pricing table: it covers every model the installed SDK names, prices requests to
the cent (expected numbers worked by hand from the rates, never by the code under test),
takes a user override from the data dir, and refuses budgets it could not keep."""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Union

import anthropic.types.model
import pytest

from tui.core.money.pricing import (
    ModelNotBudgetableError,
    PricingError,
    budgetable,
    default_pricing,
    literal_ids,
    load_pricing,
    parse_pricing,
    require_budgetable,
    sdk_model_ids,
)

# -- (a) the SDK's model list ---------------------------------------------------------


def test_every_sdk_model_is_priced_or_listed_unpriced() -> None:
    """Fails when a new anthropic SDK names a model nobody has priced or looked at: add
    its rates to pricing.toml (with the page and date), or list it under [unpriced]."""
    ids = sdk_model_ids()
    assert {"claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"} <= ids
    missing = default_pricing().unaccounted(ids)
    assert missing == [], f"SDK model ids neither priced nor listed [unpriced]: {missing}"


def test_the_coverage_check_catches_an_id_a_new_sdk_adds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the next SDK release shipped one more id in the Messages model literal.
    grown = Union[Literal["claude-opus-5-5", "claude-nova-7"], str]  # noqa: UP007
    monkeypatch.setattr(anthropic.types.model, "Model", grown)
    assert "claude-nova-7" in sdk_model_ids()
    assert default_pricing().unaccounted(sdk_model_ids()) == ["claude-nova-7"]


def test_literal_ids_reads_through_union_optional_and_annotated() -> None:
    made_up = Annotated[
        Literal["claude-a-1", "claude-b-2"] | Literal["claude-c-3"] | str | None,
        "metadata strings are not ids",
    ]
    assert literal_ids(made_up) == {"claude-a-1", "claude-b-2", "claude-c-3"}
    table = default_pricing()
    assert table.unaccounted(literal_ids(made_up)) == ["claude-a-1", "claude-b-2", "claude-c-3"]
    assert table.unaccounted({"claude-haiku-4-5-20251001", "claude-mythos-preview"}) == []


# -- (b) costs, worked by hand ---------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        # 10000*2 + 2000*10 + 100000*0.10 + 3000*2.50 (5m) + 1000*4 (1h) = 61500 / 1e6
        (
            "claude-sonnet-5-5",
            {
                "input_tokens": 10_000,
                "output_tokens": 2_000,
                "cache_read_input_tokens": 100_000,
                "cache_creation_input_tokens": 4_000,
                "ephemeral_1h_input_tokens": 1_000,
            },
            "0.0615",
        ),
        # 1000*4 + 500*20 + 20000*0.20 + 2000*5 = 28000 / 1e6
        (
            "claude-opus-5-5",
            {
                "input_tokens": 1_000,
                "output_tokens": 500,
                "cache_read_input_tokens": 20_000,
                "cache_creation_input_tokens": 2_000,
            },
            "0.028",
        ),
        # A prompt of exactly 100,000 tokens is the low band:
        # 50000*0.10 + 10000*0.50 + 40000*0.01 + 10000*0.125 = 11650 / 1e6
        (
            "claude-haiku-5-5",
            {
                "input_tokens": 50_000,
                "output_tokens": 10_000,
                "cache_read_input_tokens": 40_000,
                "cache_creation_input_tokens": 10_000,
            },
            "0.01165",
        ),
        # One token more and every token of the request pays the long-prompt band:
        # 50001*0.50 + 10000*2.50 + 40000*0.05 + 10000*0.625 = 58250.5 / 1e6
        (
            "claude-haiku-5-5",
            {
                "input_tokens": 50_001,
                "output_tokens": 10_000,
                "cache_read_input_tokens": 40_000,
                "cache_creation_input_tokens": 10_000,
            },
            "0.0582505",
        ),
        # 2000*10 + 1000*50 + 100000*0.25 = 95000 / 1e6
        (
            "claude-fable-5-1",
            {"input_tokens": 2_000, "output_tokens": 1_000, "cache_read_input_tokens": 100_000},
            "0.095",
        ),
        # 1000*8 + 1000*40 = 48000 / 1e6
        ("claude-fable-5-2", {"input_tokens": 1_000, "output_tokens": 1_000}, "0.048"),
        # A dated id costs its base model's price: 1,000,000 * 1 / 1e6
        ("claude-haiku-4-5-20251001", {"input_tokens": 1_000_000}, "1"),
    ],
)
def test_token_cost(model: str, usage: dict[str, int], expected: str) -> None:
    assert default_pricing().token_cost(model, usage) == Decimal(expected)


def test_unknown_and_unpriced_models_cost_unknown_never_zero() -> None:
    table = default_pricing()
    usage = {"input_tokens": 1_000, "output_tokens": 1_000}
    assert table.token_cost("claude-mythos-preview", usage) is None
    assert table.token_cost("claude-nonesuch-1", usage) is None
    assert table.cache_saving("claude-mythos-preview", usage) is None


def test_cache_saving_sonnet_5_5() -> None:
    # 100000*(2-0.10) - 3000*(2.50-2) - 1000*(4-2) = 186500 / 1e6
    usage = {
        "input_tokens": 10_000,
        "cache_read_input_tokens": 100_000,
        "cache_creation_input_tokens": 4_000,
        "ephemeral_1h_input_tokens": 1_000,
    }
    assert default_pricing().cache_saving("claude-sonnet-5-5", usage) == Decimal("0.1865")


def test_the_shipped_table_is_dated_and_exact() -> None:
    table = default_pricing()
    assert table.as_of == "2026-11-30"
    rates = table.rates("claude-sonnet-5-5")
    assert rates is not None and rates.cache_read == Decimal("0.10")
    assert table.unpriced_reason("claude-mythos-preview")


# -- (c) the user's override -----------------------------------------------------------

GOOD_OVERRIDE = """
session_hour = "0.50"

[models."claude-sonnet-5-5"]
cache_read = "0.05"

[models."claude-local-1"]
input = "1"
output = "2"
cache_write_5m = "1.25"
cache_write_1h = "2"
cache_read = "0.10"

[models."claude-mythos-preview"]
input = "20"
output = "100"
cache_write_5m = "25"
cache_write_1h = "40"
cache_read = "2"

[aliases]
"local" = "claude-local-1"
"""


def write_override(data_dir: Path, text: str | bytes) -> Path:
    path = data_dir / "pricing.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


def test_override_replaces_a_rate_and_adds_models(tmp_path: Path) -> None:
    path = write_override(tmp_path, GOOD_OVERRIDE)
    table = load_pricing(tmp_path)
    assert table.override_path == path and table.override_error is None
    sonnet = table.rates("claude-sonnet-5-5")
    assert sonnet is not None
    assert sonnet.cache_read == Decimal("0.05")  # replaced
    assert sonnet.input == Decimal("2") and sonnet.cache_write_1h == Decimal("4")  # kept
    # 10000*1 + 1000*2 = 12000 / 1e6, through the alias too
    usage = {"input_tokens": 10_000, "output_tokens": 1_000}
    assert table.token_cost("local", usage) == Decimal("0.012")
    # A known gap filled by the user: priced now, and no longer listed unpriced.
    assert table.token_cost("claude-mythos-preview", usage) == Decimal("0.3")
    assert table.unpriced_reason("claude-mythos-preview") is None
    assert table.session_hour == Decimal("0.50")
    # Untouched models and the shipped table itself are as shipped.
    assert table.rates("claude-opus-5-5") == default_pricing().rates("claude-opus-5-5")
    shipped = default_pricing().rates("claude-sonnet-5-5")
    assert shipped is not None and shipped.cache_read == Decimal("0.10")
    assert load_pricing(None) is default_pricing()


def test_override_can_mark_a_model_unpriced(tmp_path: Path) -> None:
    write_override(tmp_path, '[unpriced]\n"claude-opus-5" = "we are billed differently"\n')
    table = load_pricing(tmp_path)
    assert table.token_cost("claude-opus-5", {"input_tokens": 1}) is None
    assert table.unpriced_reason("claude-opus-5") == "we are billed differently"


def test_override_can_price_a_dated_id_apart_from_its_base(tmp_path: Path) -> None:
    write_override(tmp_path, '[models."claude-haiku-4-5-20251001"]\ncache_read = "0.05"\n')
    table = load_pricing(tmp_path)
    assert table.override_error is None
    dated, base = table.rates("claude-haiku-4-5-20251001"), table.rates("claude-haiku-4-5")
    assert dated is not None and base is not None
    assert (dated.input, dated.cache_read) == (Decimal("1"), Decimal("0.05"))
    assert base.cache_read == Decimal("0.10")


def test_no_override_file_is_the_shipped_table(tmp_path: Path) -> None:
    assert load_pricing(tmp_path) is default_pricing()


def test_an_edited_override_is_read_again(tmp_path: Path) -> None:
    path = write_override(tmp_path, '[models."claude-sonnet-5-5"]\ncache_read = "0.05"\n')
    first = load_pricing(tmp_path)
    assert load_pricing(tmp_path) is first  # unchanged file: not parsed again
    path.write_text('[models."claude-sonnet-5-5"]\ncache_read = "0.07"\n', "utf-8")
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse clock
    rates = load_pricing(tmp_path).rates("claude-sonnet-5-5")
    assert rates is not None and rates.cache_read == Decimal("0.07")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[models."claude-sonnet-5-5"\ninput = "1"\n', "pricing.toml"),  # TOML syntax
        ('[models."claude-sonnet-5-5"]\ninput = 0.3\n', "models.claude-sonnet-5-5.input"),
        ('[models."claude-sonnet-5-5"]\ninput = "cheap"\n', "not a decimal amount"),
        ('[models."claude-sonnet-5-5"]\ninput = "-1"\n', "from 0 to"),
        ('[models."claude-sonnet-5-5"]\nprice = "1"\n', "unknown key"),
        ('[models."claude-new-1"]\ninput = "1"\noutput = "2"\n', "models.claude-new-1.cache"),
        ('[model."claude-sonnet-5-5"]\ninput = "1"\n', "model: unknown key"),
        ('[aliases]\n"x" = "claude-nowhere-1"\n', "not in the table"),
        ('currency = "EUR"\n', "only USD"),
        ("models = 3\n", "models: must be a table"),
        ('[models."claude-new-1"]\ninput="1"\n[unpriced]\n"claude-new-1" = "why"\n', "also priced"),
        (b"\xff\xfe[models]\n", "codec"),  # not UTF-8
    ],
)
def test_a_malformed_override_is_reported_in_one_line_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str | bytes, says: str
) -> None:
    path = write_override(tmp_path, text)
    with caplog.at_level(logging.WARNING, logger="corral.pricing"):
        table = load_pricing(tmp_path)  # never raises
    error = table.override_error
    assert error is not None and "\n" not in error
    assert str(path) in error and says in error and error.endswith("using the shipped prices)")
    assert table.override_path is None
    assert table.models == default_pricing().models
    assert table.unpriced == default_pricing().unpriced
    assert [r.getMessage() for r in caplog.records] == [error]


def test_an_override_that_is_not_a_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pricing.toml").mkdir()
    table = load_pricing(tmp_path)
    assert table.override_error is not None and "directory" in table.override_error
    assert table.models == default_pricing().models


def test_a_malformed_whole_table_raises_one_line() -> None:
    with pytest.raises(PricingError) as caught:
        parse_pricing({"models": {}}, "shipped.toml")
    assert str(caught.value) == "shipped.toml: as_of: must be a non-empty string"
    with pytest.raises(PricingError, match="every model needs all five"):
        parse_pricing({"as_of": "x", "models": {"m": {"input": "1"}}})


# -- (d) budgets on models the table cannot price ---------------------------------------


@pytest.mark.parametrize("model", ["claude-mythos-preview", "claude-nonesuch-1"])
def test_a_budget_on_an_unpriced_model_is_refused(model: str) -> None:
    assert not budgetable(model)
    with pytest.raises(ModelNotBudgetableError) as caught:
        require_budgetable(model)
    error = caught.value
    assert error.kind == "model_not_budgetable"
    assert str(error).startswith(f"{model}: a budget cannot be kept on this model")
    assert "\n" not in str(error)


def test_the_refusal_says_why() -> None:
    with pytest.raises(ModelNotBudgetableError, match="no published price found"):
        require_budgetable("claude-mythos-preview")
    with pytest.raises(ModelNotBudgetableError, match=r"not in the pricing table \(as of "):
        require_budgetable("claude-nonesuch-1")


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-4-5-20251101"])
def test_a_budget_on_a_priced_model_is_accepted(model: str) -> None:
    assert budgetable(model)
    require_budgetable(model)  # no error


def test_an_override_price_makes_a_model_budgetable(tmp_path: Path) -> None:
    write_override(tmp_path, GOOD_OVERRIDE)
    table = load_pricing(tmp_path)
    require_budgetable("claude-mythos-preview", table)
    assert budgetable("claude-local-1", table) and not budgetable("claude-local-1")
