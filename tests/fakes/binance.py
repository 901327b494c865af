"""A fake Binance spot REST server on 127.0.0.1 for tests of the real client.

    fake = FakeBinance().start()          # klines of the bundled BTCUSDT year
    client.API_URL = fake.url             # http://127.0.0.1:<port>/api
    fake.fail_next("rate_limit", times=2, retry_after=1)
    ...
    fake.stop()

Serves GET /api/v3/ping and GET /api/v3/klines (symbol, interval=1h,
startTime, endTime, limit ≤ 1000 as Binance does). Unknown symbols get
Binance's 400 {"code": -1121}. `now` (a datetime) hides klines that have not
opened yet and serves the current one still open, with partial values.
Faults are queued per request with `fail_next`; kinds:
  rate_limit   429 + Retry-After, {"code": -1003}
  banned       418 + Retry-After, {"code": -1003}
  server_error 5xx (503 unless `status`) with an HTML body
  slow         sleeps `delay` seconds, then answers normally
  malformed    200 with a truncated JSON body
  disconnect   closes the connection without an answer
Every request is recorded in `requests` (path and query parameters).
"""

from __future__ import annotations

import csv
import gzip
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

BUNDLED = Path(__file__).resolve().parents[2] / "markets" / "data" / "btcusdt_1h_2021-03-06_2022-03-06.csv.gz"
HOUR_MS = 3_600_000
FAULT_KINDS = {"ok", "rate_limit", "banned", "server_error", "slow", "malformed", "disconnect"}


def bundled_klines(path: Path = BUNDLED) -> list[list[Any]]:
    """The bundled CSV as Binance kline arrays (ints for times and trades, strings for decimals)."""
    return [list(kline) for kline in _read_klines(path)]


@lru_cache(maxsize=2)
def _read_klines(path: Path) -> tuple[tuple[Any, ...], ...]:
    klines = []
    with gzip.open(path, "rt", newline="") as text:
        for row in csv.DictReader(text):
            opened = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            klines.append(
                (
                    int(opened.timestamp() * 1000),
                    row["open"],
                    row["high"],
                    row["low"],
                    row["close"],
                    row["volume"],
                    int(row["close_time"]),
                    row["quote_av"],
                    int(row["trades"]),
                    row["tb_base_av"],
                    row["tb_quote_av"],
                    "0",
                )
            )
    return tuple(klines)


@dataclass
class Fault:
    kind: str
    retry_after: float | None = None
    delay: float = 0.0
    status: int = 503


class FakeBinance:
    def __init__(
        self, klines: list[list[Any]] | None = None, symbols: tuple[str, ...] = ("BTCUSDT",)
    ) -> None:
        self.klines = klines if klines is not None else bundled_klines()
        self.symbols = set(symbols)
        self.now: datetime | None = None
        self.requests: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FakeBinance:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-binance",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The value for python-binance's API_URL (settings.BINANCE_API_URL)."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    # -- scripting -----------------------------------------------------------
    def fail_next(
        self,
        kind: str,
        times: int = 1,
        *,
        after: int = 0,
        retry_after: float | None = 0,
        delay: float = 1.0,
        status: int = 503,
    ) -> None:
        """Answer the next `times` requests (after `after` normal ones) with a fault."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend(Fault("ok") for _ in range(after))
            self._faults.extend(Fault(kind, retry_after, delay, status) for _ in range(times))

    @property
    def kline_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/api/v3/klines"]

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._faults.popleft() if self._faults else Fault("ok")

    # -- klines ----------------------------------------------------------------
    def select(self, start: int | None, end: int | None, limit: int) -> list[list[Any]]:
        now_ms = int(self.now.timestamp() * 1000) if self.now is not None else None
        rows = []
        for kline in self.klines:
            opened = kline[0]
            if (start is not None and opened < start) or (end is not None and opened > end):
                continue
            if now_ms is not None and opened > now_ms:
                continue
            if now_ms is not None and now_ms < opened + HOUR_MS:
                kline = _still_open(kline)
            rows.append(kline)
        return rows[-limit:] if start is None and end is not None else rows[:limit]


def _still_open(kline: list[Any]) -> list[Any]:
    """The kline as Binance shows it mid-hour: same open, partial everything else."""
    price = kline[1]
    return [kline[0], price, price, price, price, "1.00000000", kline[6], price, 1, "0.50000000", "0", "0"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) leaves a broken pipe here: expected, not noise.
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBinance
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fake.requests.append({"path": parts.path, **params})
        fault = self.fake._next_fault()
        if fault.kind == "disconnect":
            self.close_connection = True
            return
        if fault.kind == "slow":
            time.sleep(fault.delay)
        if fault.kind in ("rate_limit", "banned"):
            status = 429 if fault.kind == "rate_limit" else 418
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return self._json(status, {"code": -1003, "msg": "Too many requests."}, headers)
        if fault.kind == "server_error":
            return self._send(fault.status, b"<html><body>Service Unavailable</body></html>", "text/html")
        if fault.kind == "malformed":
            return self._send(200, b'[[1615050000000,"47755.08000000","484', "application/json")
        if parts.path == "/api/v3/ping":
            return self._json(200, {})
        if parts.path != "/api/v3/klines":
            return self._json(404, {"code": -1000, "msg": f"unknown path {parts.path}"})
        return self._klines(params)

    def _klines(self, params: dict[str, str]) -> None:
        symbol = params.get("symbol", "")
        if not symbol:
            return self._json(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."})
        if symbol not in self.fake.symbols:
            return self._json(400, {"code": -1121, "msg": "Invalid symbol."})
        if params.get("interval") != "1h":
            return self._json(400, {"code": -1120, "msg": "Invalid interval (this fake serves 1h only)."})
        try:
            limit = int(params.get("limit", "500"))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            return self._json(400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
        if not 1 <= limit <= 1000:
            return self._json(400, {"code": -1130, "msg": "Invalid data sent for a parameter: limit."})
        return self._json(200, self.fake.select(start, end, limit))

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
