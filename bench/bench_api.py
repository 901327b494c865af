"""Throughput of the forecast endpoint against /healthz on one gunicorn server, and worker RSS.

Usage:
    .venv/bin/python bench/bench_api.py [--duration 10] [--rounds 2] [--connections 4] [--json out.json]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_api.py

Prepares a database (SQLite in a temporary VAR_DIR, or with DATABASE_URL the
PostgreSQL database `mur_api_bench` on that server, dropped and created again),
with a user whose quota is large enough, a token, BTCUSDT with candles, an
active model version and its stored 24-hour forecast. Starts gunicorn with 2
sync workers on 127.0.0.1 (DEBUG=0), then loads /healthz and
/api/v1/assets/BTCUSDT/forecast/ alternately (and /api/v1/usage/ for
reference), `--rounds` times each for
`--duration` seconds, with wrk (/usr/bin/wrk) or, without it, a Python load
generator. Requests carry X-Forwarded-Proto: https, as behind the TLS proxy
of a production deployment. Reports requests/s and p50/p99 latency per
endpoint (median over rounds), the forecast/healthz throughput ratio (goal
>= 0.7) and the RSS of each web worker after the load (goal < 150 MB), with
whether torch or onnxruntime is mapped into it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, fresh_postgres, machine  # noqa: E402

BENCH_DB = "mur_api_bench"
FORECAST = "/api/v1/assets/BTCUSDT/forecast/"
HEALTHZ = "/healthz"
USAGE = "/api/v1/usage/"
WRK = "/usr/bin/wrk"

# Runs inside the project (a separate process with the bench environment).
SETUP = r"""
import datetime as dt, json
from decimal import Decimal
import django
django.setup()
from django.contrib.auth import get_user_model
from django.utils import timezone
from accounts.services import api_quota_set, api_token_create
from forecasting.models import Forecast, ModelVersion
from markets.models import Asset, Candle

HOUR = dt.timedelta(hours=1)
user = get_user_model().objects.create_user("bench", password="bench-only-password")
api_quota_set(user=user, monthly_limit=2_000_000_000)
_, key = api_token_create(user=user, name="bench")
asset = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT", last_synced_at=timezone.now())
last = timezone.now().replace(minute=0, second=0, microsecond=0) - HOUR
candles = []
for i in range(500):
    when = last - (499 - i) * HOUR
    price = Decimal(40000 + 10 * i)
    candles.append(Candle(asset=asset, open_time=when, close_time=when + HOUR - dt.timedelta(milliseconds=1),
                          open=price, high=price + 5, low=price - 5, close=price, volume=Decimal("12.5"),
                          quote_volume=Decimal("500000"), trades=1000, taker_buy_base_volume=Decimal("6"),
                          taker_buy_quote_volume=Decimal("250000")))
Candle.objects.bulk_create(candles)
steps = 24
metrics = {"horizon": steps, **{name: [0.01 * (s + 1) for s in range(steps)] for name in (
    "rmse", "mae", "mape", "persistence_rmse", "persistence_mae", "direction_accuracy", "coverage_80",
    "skill_rmse")}}
version = ModelVersion.objects.create(asset=asset, version=1, status="active", horizon=steps, window=120,
                                      metrics=metrics, trained_at=timezone.now(), epochs=10, train_seconds=30.0,
                                      loss_history=[{"epoch": e, "train_loss": 0.1, "val_loss": 0.1}
                                                    for e in range(10)])
close = float(candles[-1].close)
points = [{"time": (last + (s + 1) * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ"), "close": close + s,
           "lower": close + s - 300, "upper": close + s + 300} for s in range(steps)]
Forecast.objects.create(asset=asset, model_version=version, base_time=last, last_close=candles[-1].close,
                        horizon=steps, points=points)
print(json.dumps({"key": key}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", HEALTHZ)
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not answer /healthz in time")


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def load_wrk(port: int, path: str, headers: dict[str, str], duration: int, connections: int) -> dict:
    command = [WRK, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _seconds(re.search(r"\s50%\s+(\S+)", output).group(1)) * 1000,
        "p99_ms": _seconds(re.search(r"\s99%\s+(\S+)", output).group(1)) * 1000,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def load_python(port: int, path: str, headers: dict[str, str], duration: int, connections: int) -> dict:
    """Threads with http.client, reconnecting when the server closes (gunicorn sync workers do)."""
    latencies: list[float] = []
    failures, ok = [0], [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client() -> None:
        mine: list[float] = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures[0] += 1
                else:
                    ok[0] += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                failures[0] += 1
                connection.close()
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "requests": len(latencies),
        "ok": ok[0],
        "rps": len(latencies) / duration,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "non_2xx": failures[0],
        "socket_errors": "",
    }


def _quota_check(port: int, headers: dict[str, str], connections: int) -> dict:
    """Concurrent counted calls must move the user's counter by exactly the calls answered 200.

    Python clients here (not wrk): each finishes the request it started, so every
    call the server counted is also counted on this side.
    """

    def used() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", USAGE, headers=headers)  # usage/ itself is not counted
        return json.loads(connection.getresponse().read())["used"]

    before = used()
    load = load_python(port, FORECAST, headers, 3, connections)
    after = used()
    return {
        "calls_answered_200": load["ok"],
        "counter_moved_by": after - before,
        "exact": after - before == load["ok"],
    }


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return sorted(children)


def worker_memory(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    maps = Path(f"/proc/{pid}/maps").read_text()
    kib = {key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) for key in ("VmRSS", "VmHWM")}
    return {
        "pid": pid,
        "rss_mb": kib["VmRSS"] / 1024,
        "peak_rss_mb": kib["VmHWM"] / 1024,
        "torch_mapped": "libtorch" in maps,
        "onnxruntime_mapped": "onnxruntime" in maps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternations healthz/forecast")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--python-load", action="store_true", help="use the Python generator even with wrk")
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="bench-api-")
    env = {
        **os.environ,
        "VAR_DIR": var,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "makeusrich.settings",
    }
    env.pop("REDIS_URL", None)  # the forecast path uses neither cache nor broker
    database = "SQLite (file in a temporary VAR_DIR)"
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"], database = fresh_postgres(os.environ["DATABASE_URL"], name=BENCH_DB)
    else:
        env.pop("DATABASE_URL", None)
    run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True, "text": True, "timeout": 600}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], **run)
    # DEBUG=0 links static files through the manifest: gunicorn refuses to start without it.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], **run)
    key = json.loads(subprocess.run([sys.executable, "-c", SETUP], **run).stdout.strip().splitlines()[-1])[
        "key"
    ]

    port = _free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "makeusrich.wsgi:application",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            # gunicorn 27 keeps one control socket per user: a `make run` beside the bench would lose its.
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
    )
    use_wrk = Path(WRK).exists() and not args.python_load
    load = load_wrk if use_wrk else load_python
    proxy = {"X-Forwarded-Proto": "https"}
    token = {**proxy, "Authorization": f"Token {key}"}
    # usage/ for reference: DRF + token lookup + one read, without the quota write.
    endpoints = {"healthz": (HEALTHZ, proxy), "forecast": (FORECAST, token), "usage": (USAGE, token)}
    results: dict[str, list[dict]] = {name: [] for name in endpoints}
    try:
        _wait_ready(port)
        for path, headers in endpoints.values():  # warm up: imports, connections, caches
            load(port, path, headers, 2, args.connections)
        for _ in range(args.rounds):
            for name, (path, headers) in endpoints.items():
                results[name].append(load(port, path, headers, args.duration, args.connections))
                print(name, json.dumps(results[name][-1]), flush=True)
        workers = [worker_memory(pid) for pid in _children(gunicorn.pid)]
        quota = _quota_check(port, token, args.connections)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        shutil.rmtree(var, ignore_errors=True)

    summary = {
        name: {field: statistics.median(r[field] for r in rounds) for field in ("rps", "p50_ms", "p99_ms")}
        for name, rounds in results.items()
    }
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "database": database,
        "generator": f"wrk -t2 -c{args.connections}" if use_wrk else f"python, {args.connections} threads",
        "gunicorn_workers": args.workers,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "summary": summary,
        "ratio_forecast_to_healthz": summary["forecast"]["rps"] / summary["healthz"]["rps"],
        "rounds_detail": results,
        "workers": workers,
        "quota": quota,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
