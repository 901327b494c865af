"""Pure kline helpers: symbol split, exact decimals, kline checks, gaps (no database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from markets.klines import (
    KlineError,
    decimal_text,
    find_gaps,
    gap_report,
    kline_from_binance,
    kline_is_closed,
    parse_decimal,
    parse_int,
    parse_time,
    symbol_split,
)

T0 = datetime(2021, 3, 6, 17, tzinfo=UTC)
HOUR = timedelta(hours=1)
T0_MS = 1615050000000
GOOD = [T0_MS, "10.5", "11.0", "10.0", "10.75", "2.5", T0_MS + 3_599_999, "26.0", 7, "1.0", "10.4", "0"]


@pytest.mark.parametrize(
    ("stored", "text"),
    [
        ("48109.7900000000", "48109.79"),
        ("48000.0000000000", "48000"),
        ("4.8E+4", "48000"),
        ("0.0000390000", "0.000039"),
        ("0.0000000001", "0.0000000001"),
        ("0E-10", "0"),
        ("1234.5", "1234.5"),
        ("100", "100"),
    ],
)
def test_decimals_are_shown_without_padding_zeros_or_exponents(stored, text):
    assert decimal_text(Decimal(stored)) == text


@pytest.mark.parametrize(
    ("symbol", "pair"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("ethbtc", ("ETH", "BTC")),
        ("BNBFDUSD", ("BNB", "FDUSD")),
        ("XRPEUR", ("XRP", "EUR")),
    ],
)
def test_symbols_split_at_a_known_quote(symbol, pair):
    assert symbol_split(symbol) == pair


@pytest.mark.parametrize(("symbol", "example"), [("USDT", "BTCUSDT"), ("btc", "ETHBTC")])
def test_a_symbol_that_is_only_a_quote_is_refused_saying_the_base_is_missing(symbol, example):
    with pytest.raises(KlineError) as refused:
        symbol_split(symbol)

    message = str(refused.value)
    assert (
        f"{symbol.upper()!r} is only a quote currency: the base currency in front of it is missing" in message
    )
    assert f"e.g. {example}" in message
    assert "must end with one of" not in message  # it does end with one: that was the confusing part


def test_decimals_are_exact_and_keep_their_digits():
    assert parse_decimal("128615238.60874081", "v") == Decimal("128615238.60874081")
    assert parse_decimal(" 1.500000000000 ", "v") == Decimal("1.5000000000")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("1_0", "not a number (only digits 0-9"),
        ("\u0661\u0660", "not a number (only digits 0-9"),  # Arabic-Indic "10"
        ("\uff11", "not a number (only digits 0-9"),  # fullwidth "1"
        ("nan", "not a finite number"),
        ("1e400", "too large"),
        ("0.00000000001", "more than 10 decimal places"),
    ],
)
def test_decimals_that_do_not_fit_are_refused(raw, words):
    with pytest.raises(KlineError, match=re.escape(words)):
        parse_decimal(raw, "v")


@pytest.mark.parametrize("raw", ["1_000", "\u0661\u0660", "1.5"])
def test_whole_numbers_must_be_plain_ascii_integers(raw):
    with pytest.raises(KlineError, match="is not a whole number"):
        parse_int(raw, "trades")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1615050000000", T0),  # milliseconds: the API and dumps until 2024
        ("1615050000000000", T0),  # microseconds: Binance spot dumps since 2025
        ("1615053599999999", T0 + HOUR - timedelta(microseconds=1)),
        ("2021-03-06 17:00:00", T0),
    ],
)
def test_times_are_epoch_milliseconds_microseconds_or_iso(raw, expected):
    assert parse_time(raw, "timestamp") == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("1615050000", "timestamp 1615050000 looks like epoch seconds"),
        ("16150500000000000000", "is neither epoch milliseconds (13 digits) nor microseconds (16 digits)"),
        ("9999-12-31 23:00:00", "is out of range"),
        ("0001-01-01 00:00:00+01:00", "is neither epoch"),
        ("\u0661\u0666\u0661\u0665", "is neither epoch"),  # Arabic-Indic digits
    ],
)
def test_times_that_cannot_be_read_raise_a_kline_error_not_a_crash(raw, words):
    with pytest.raises(KlineError, match=re.escape(words)):
        parse_time(raw, "timestamp")


def test_a_binance_kline_becomes_a_row():
    row = kline_from_binance(GOOD)

    assert row.open_time == T0
    assert row.close_time == T0 + HOUR - timedelta(milliseconds=1)
    assert (row.open, row.trades) == (Decimal("10.5"), 7)


def test_a_kline_closed_early_by_maintenance_is_accepted_as_it_is():
    early = [*GOOD[:6], T0_MS + 58_146, *GOOD[7:]]

    assert kline_from_binance(early).close_time == T0 + timedelta(milliseconds=58_146)


def test_a_binance_kline_with_microsecond_times_becomes_the_same_row():
    micro = [T0_MS * 1000, *GOOD[1:6], (T0_MS + 3_599_999) * 1000 + 999, *GOOD[7:]]

    row = kline_from_binance(micro)

    assert row.open_time == T0
    assert row.close_time == T0 + HOUR - timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("index", "value", "words"),
    [
        (0, "1615050000000", "must be integers"),
        (0, T0_MS // 1000, "open time 1615050000 looks like epoch seconds"),
        (0, 10**25, "open time 10000000000000000000000000 is neither epoch milliseconds"),
        (6, 10**25, "2021-03-06 17:00 UTC: close time 10000000000000000000000000 is neither"),
        (1, "0", "2021-03-06 17:00 UTC: open 0 is not a price"),
        (3, "0.00000000", "low 0.00000000 is not a price"),
        (8, -1, "trades -1 is negative"),
        (10, "26.5", "taker-buy quote volume 26.5 exceeds quote volume 26.0"),
        (5, "2_5", "volume '2_5' is not a number"),
        (6, T0_MS + 3_600_000, "outside the hour"),
        (2, "9.0", "high 9.0 is below low"),
        (9, "3.0", "exceeds volume"),
        (4, "999", "kline opened at 2021-03-06 17:00 UTC: close 999 is outside"),
    ],
)
def test_an_inconsistent_kline_is_refused(index, value, words):
    raw = list(GOOD)
    raw[index] = value
    with pytest.raises(KlineError, match=re.escape(words)):
        kline_from_binance(raw)


def test_a_candle_counts_as_closed_only_30_seconds_after_its_hour_ended():
    row = kline_from_binance(GOOD)

    assert not kline_is_closed(row, T0 + HOUR)
    assert not kline_is_closed(row, T0 + HOUR + timedelta(seconds=29))
    assert kline_is_closed(row, T0 + HOUR + timedelta(seconds=30))


def test_gaps_are_found_between_non_consecutive_hours():
    times = [T0, T0 + HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR, T0 + 7 * HOUR]

    gaps = find_gaps(times)

    assert [(g.after, g.before, g.missing_hours) for g in gaps] == [
        (T0 + HOUR, T0 + 4 * HOUR, 2),
        (T0 + 5 * HOUR, T0 + 7 * HOUR, 1),
    ]
    assert gap_report("BTCUSDT", gaps)[0] == (
        "Gap report for BTCUSDT: 2 gap(s), 3 missing hour(s) (left missing: no candle is made up)"
    )
    assert "1 missing hour (" in gap_report("BTCUSDT", gaps)[2]
