"""Binance public klines through python-binance, with our own paging and retries.

We page with `get_klines` (1000 per page, one after another) instead of
`get_historical_klines`, which first probes for the earliest kline and sleeps
1 s every three pages. The client retries nothing itself, so transient
faults (timeouts, connection errors, HTTP 5xx, 429/418, a malformed body)
are retried here with exponential backoff, honouring Retry-After. Everything
is fetched before anything is stored, so such a failure leaves no partial sync.
A kline that fails validation is not retried (the exchange would send it
again): the error names its open time and carries the good candles before it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException

from markets.klines import (
    CLOSED_MARGIN,
    INTERVAL,
    KlineError,
    KlineRow,
    datetime_to_ms,
    floor_hour,
    kline_from_binance,
    kline_is_closed,
)
from markets.sources import Fetched, SourceError, range_hours

logger = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # Binance's maximum for /api/v3/klines
# A Retry-After longer than this (418 bans last minutes to days) is not waited
# out inside one sync: the sync fails and the next scheduled one tries again.
MAX_RETRY_AFTER_SECONDS = 60.0
INVALID_SYMBOL = -1121


class _MalformedPage(Exception):
    """A 2xx answer that is not a list of klines: a proxy or a glitch, worth retrying."""


class _BadKline(Exception):
    """A kline that fails our checks; `valid` holds the page's klines before it."""

    def __init__(self, description: str, valid: list[KlineRow]) -> None:
        super().__init__(description)
        self.valid = valid


class _Transient(Exception):
    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


def _retry_after(error: BinanceAPIException) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    raw = headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _classify(error: Exception, symbol: str, timeout: float) -> _Transient:
    """A retryable description of `error`, or SourceError if retrying is pointless."""
    if isinstance(error, BinanceAPIException):
        status = error.status_code
        if status in (429, 418):
            what = "rate limited" if status == 429 else "IP banned for exceeding rate limits"
            return _Transient(f"HTTP {status} ({what})", _retry_after(error))
        if status >= 500:
            return _Transient(f"HTTP {status} server error")
        if error.code == INVALID_SYMBOL:
            raise SourceError(
                f"Binance does not know the symbol {symbol} (code -1121: {error.message}); "
                "check the asset's symbol or deactivate it"
            ) from error
        raise SourceError(
            f"Binance refused the request: HTTP {status}, code {error.code}: {error.message}"
        ) from error
    if isinstance(error, BinanceRequestException):
        return _Transient(f"malformed response: {error.message:.120}")
    if isinstance(error, _MalformedPage):
        return _Transient(f"malformed response: {error}")
    if isinstance(error, requests.exceptions.Timeout):
        return _Transient(f"no answer within {timeout:g} s")
    if isinstance(error, requests.exceptions.RequestException):
        return _Transient(f"connection failed ({type(error).__name__})")
    raise error


class BinanceSource:
    name = "binance"

    def __init__(
        self,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 4,
        retry_base_seconds: float = 1.0,
        backfill_days: int = 365,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self.backfill_days = backfill_days
        self.sleep = sleep

    def _client(self) -> Client:
        client = Client(self.api_key, self.api_secret, requests_params={"timeout": self.timeout}, ping=False)
        if self.api_url:
            client.API_URL = self.api_url.rstrip("/")
        return client

    def fetch(self, *, symbol: str, after: datetime | None, now: datetime) -> Fetched:
        start = (
            after + INTERVAL if after is not None else floor_hour(now - timedelta(days=self.backfill_days))
        )
        if start + INTERVAL + CLOSED_MARGIN > now:
            return Fetched([], "no candle has closed since the last sync")
        client = self._client()
        try:
            rows = self._fetch_all(client, symbol, start, now)
        finally:
            client.close_connection()
        return Fetched(rows, f"binance: {len(rows)} closed candle(s) from {start:%Y-%m-%d %H:%M} UTC")

    def coverage(self, *, symbol: str) -> None:
        return None  # the exchange's own history: an hour it answers for without a candle is an outage

    def fetch_range(self, *, symbol: str, first: datetime, last: datetime, now: datetime) -> Fetched:
        range_hours(first, last)  # one page holds the whole range
        client = self._client()
        try:
            page = self._with_retries(
                lambda: self._page(client, symbol, datetime_to_ms(first), datetime_to_ms(last)), symbol
            )
        except _BadKline as bad:
            raise SourceError(
                f"Binance sent a bad kline for {symbol} (not retried): {bad}",
                rows=[row for row in bad.valid if kline_is_closed(row, now)],
            ) from bad
        finally:
            client.close_connection()
        rows = [row for row in page if kline_is_closed(row, now)]
        return Fetched(
            rows, f"binance: {len(rows)} candle(s) from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
        )

    def _fetch_all(self, client: Client, symbol: str, start: datetime, now: datetime) -> list[KlineRow]:
        end_ms = datetime_to_ms(now)
        start_ms = datetime_to_ms(start)
        max_pages = math.ceil((now - start) / INTERVAL / PAGE_LIMIT) + 2
        rows: list[KlineRow] = []
        for _ in range(max_pages):
            try:
                page = self._with_retries(lambda s=start_ms: self._page(client, symbol, s, end_ms), symbol)
            except _BadKline as bad:
                rows.extend(row for row in bad.valid if kline_is_closed(row, now))
                raise SourceError(
                    f"Binance sent a bad kline for {symbol} (not retried): {bad}", rows=rows
                ) from bad
            # The newest kline may still be open: it is stored by a later sync.
            rows.extend(row for row in page if kline_is_closed(row, now))
            if len(page) < PAGE_LIMIT:
                return rows
            start_ms = datetime_to_ms(page[-1].open_time + INTERVAL)
            if start_ms > end_ms:
                return rows
        raise SourceError(f"Binance kept sending full pages for {symbol} beyond {max_pages} pages; stopped")

    def _page(self, client: Client, symbol: str, start_ms: int, end_ms: int) -> list[KlineRow]:
        raw: Any = client.get_klines(
            symbol=symbol,
            interval=Client.KLINE_INTERVAL_1HOUR,
            startTime=start_ms,
            endTime=end_ms,
            limit=PAGE_LIMIT,
        )
        if not isinstance(raw, list):
            raise _MalformedPage(f"expected a list of klines, got {type(raw).__name__}")
        page: list[KlineRow] = []
        previous_ms = start_ms - 1
        for item in raw:
            try:
                row = kline_from_binance(item)
            except KlineError as error:
                raise _BadKline(str(error), page) from error
            open_ms = datetime_to_ms(row.open_time)
            if not previous_ms < open_ms <= end_ms:
                raise _BadKline(
                    f"kline opened at {row.open_time:%Y-%m-%d %H:%M} UTC is out of order "
                    "or out of the range asked",
                    page,
                )
            previous_ms = open_ms
            page.append(row)
        return page

    def _with_retries(self, call: Callable[[], list[KlineRow]], symbol: str) -> list[KlineRow]:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return call()
            except (
                BinanceAPIException,
                BinanceRequestException,
                _MalformedPage,
                requests.RequestException,
            ) as error:
                fault = _classify(error, symbol, self.timeout)
            if attempt + 1 == attempts:
                raise SourceError(f"Binance klines for {symbol} failed after {attempts} attempt(s): {fault}")
            if fault.retry_after is None:
                delay = min(self.retry_base_seconds * 2**attempt, MAX_RETRY_AFTER_SECONDS)
            elif fault.retry_after > MAX_RETRY_AFTER_SECONDS:
                raise SourceError(
                    f"Binance klines for {symbol}: {fault}; asked to wait {fault.retry_after:g} s, "
                    "longer than one sync may wait; the next sync will try again"
                )
            else:
                delay = fault.retry_after
            logger.warning("Binance klines for %s: %s; retry %d in %.2f s", symbol, fault, attempt + 1, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")
