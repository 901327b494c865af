"""The request path reads rows: serving every endpoint imports no torch, onnxruntime, pandas or Binance client."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pandas too: ~40 MB per web worker, needed only where training frames are built.
HEAVY = ("torch", "onnxruntime", "onnx", "binance", "pandas")

# Runs in a fresh interpreter: this test process has imported everything already.
SCRIPT = r"""
import json, sys, datetime as dt
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from accounts.services import api_token_create
from markets.models import Asset, Candle
from forecasting.models import Forecast, ModelVersion

staff = get_user_model().objects.create_user("root", password="pw-for-the-test", is_staff=True)
_, key = api_token_create(user=staff, name="t")
asset = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT")
now = timezone.now().replace(minute=0, second=0, microsecond=0)
Candle.objects.create(asset=asset, open_time=now, close_time=now, open=1, high=1, low=1, close=1, volume=1,
                      quote_volume=1, trades=1, taker_buy_base_volume=1, taker_buy_quote_volume=1)
version = ModelVersion.objects.create(asset=asset, version=1, status="active", horizon=1, window=2)
Forecast.objects.create(asset=asset, model_version=version, base_time=now, last_close=1, horizon=1,
                        points=[{"time": "x", "close": 1.0, "lower": 0.5, "upper": 1.5}])
client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_X_FORWARDED_PROTO="https")
statuses = {}
for path in ["assets/", "assets/btcusdt/", "assets/btcusdt/candles/", "assets/btcusdt/forecast/",
             "assets/btcusdt/models/", "assets/btcusdt/track-record/", "usage/", "schema/", "docs/"]:
    statuses[path] = client.get("/api/v1/" + path).status_code
statuses["retrain"] = client.post("/api/v1/assets/btcusdt/retrain/").status_code
statuses["token"] = Client(HTTP_X_FORWARDED_PROTO="https").post(
    "/api/v1/auth/token/", {"username": "root", "password": "pw-for-the-test"}).status_code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def test_serving_every_endpoint_imports_no_ml_runtime_and_no_binance(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "makeusrich.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "only-for-this-test",
        # DEBUG: static URLs without a collectstatic manifest (the docs page); imports are the same.
        "DEBUG": "1",
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)  # the embedded broker is enough to enqueue the retrain
    script = f"HEAVY = {HEAVY!r}\n" + SCRIPT
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == {
        "assets/": 200,
        "assets/btcusdt/": 200,
        "assets/btcusdt/candles/": 200,
        "assets/btcusdt/forecast/": 200,
        "assets/btcusdt/models/": 200,
        "assets/btcusdt/track-record/": 200,
        "usage/": 200,
        "schema/": 200,
        "docs/": 200,
        "retrain": 202,
        "token": 201,
    }
    assert report["heavy"] == []
