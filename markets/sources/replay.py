"""The bundled real data, revealed as if it were arriving live.

A new asset gets the first 90 % of the bundled year as its backfill; each
later sync reveals the next `candles_per_sync` candles after the asset's last
stored one, so the pace is the sync schedule times that setting. A hole in
the data (an exchange outage) is crossed in one step, exactly as the
exchange itself would come back: the missing hours stay missing. When the
data runs out a sync adds nothing and says so. Only the hours between the
first and last bundled candle are known: an hour outside them is not an
outage, the replay simply has nothing there (`coverage`).
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from markets.csvfile import read_klines_csv
from markets.klines import KlineRow, kline_is_closed
from markets.sources import Fetched, SourceError, range_hours

BACKFILL_FRACTION = 0.9


@lru_cache(maxsize=4)
def _bundled_rows(path: str) -> tuple[KlineRow, ...]:
    return tuple(read_klines_csv(path, now=datetime.now(UTC)))


def replay_symbol(path: Path) -> str:
    """The symbol a bundled file holds, from its name (btcusdt_1h_... -> BTCUSDT)."""
    return Path(path).name.split("_", 1)[0].upper()


class ReplaySource:
    name = "replay"

    def __init__(self, *, path: Path | str, candles_per_sync: int) -> None:
        if candles_per_sync < 1:
            raise ValueError("candles_per_sync must be at least 1")
        self.path = Path(path)
        self.symbol = replay_symbol(self.path)
        self.candles_per_sync = candles_per_sync

    def rows(self) -> tuple[KlineRow, ...]:
        return _bundled_rows(str(self.path))

    def _check_symbol(self, symbol: str) -> None:
        if symbol.upper() != self.symbol:
            raise SourceError(
                f"the replay source only has {self.symbol} (the bundled data); "
                f"{symbol} needs MARKET_DATA_SOURCE=binance"
            )

    def coverage(self, *, symbol: str) -> tuple[datetime, datetime]:
        self._check_symbol(symbol)
        rows = self.rows()
        return rows[0].open_time, rows[-1].open_time

    def fetch_range(self, *, symbol: str, first: datetime, last: datetime, now: datetime) -> Fetched:
        """The bundled candles in the range: its outages come back as hours without a candle.

        A range reaching outside the bundled data is refused: an hour there is not an
        outage, and an answer without it would say it is."""
        covered_first, covered_last = self.coverage(symbol=symbol)
        range_hours(first, last)
        if first < covered_first or last > covered_last:
            raise SourceError(
                f"replay has no data from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC: "
                f"the bundled data covers {covered_first:%Y-%m-%d %H:%M} to {covered_last:%Y-%m-%d %H:%M} UTC"
            )
        rows = self.rows()
        start = bisect.bisect_left(rows, first, key=lambda r: r.open_time)
        stop = bisect.bisect_right(rows, last, key=lambda r: r.open_time)
        chunk = [r for r in rows[start:stop] if kline_is_closed(r, now)]
        return Fetched(chunk, f"replay: {len(chunk)} bundled candle(s) in the range")

    def fetch(self, *, symbol: str, after: datetime | None, now: datetime) -> Fetched:
        self._check_symbol(symbol)
        rows = self.rows()
        if after is None:
            count = int(len(rows) * BACKFILL_FRACTION)
            backfill = [r for r in rows[:count] if kline_is_closed(r, now)]
            return Fetched(
                backfill, f"replay backfill: the first {len(backfill)} of {len(rows)} bundled candles"
            )
        start = bisect.bisect_right(rows, after, key=lambda r: r.open_time)
        chunk = [r for r in rows[start : start + self.candles_per_sync] if kline_is_closed(r, now)]
        if not chunk:
            return Fetched(
                [], f"replay data exhausted: the bundled data ends at {rows[-1].open_time:%Y-%m-%d %H:%M} UTC"
            )
        return Fetched(chunk, f"replay: revealed {len(chunk)} candle(s)")
