"""The API's hot path on SQLite, `make run`'s default database (CI's own database is PostgreSQL)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter on a new SQLite file.
SCRIPT = r"""
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from accounts.hotpath import token_lookup
from accounts.selectors import api_token_hash, api_usage_get
from accounts.services import api_quota_set, api_token_create, api_token_revoke
from markets.models import Asset, Candle
from forecasting.models import Forecast, ModelVersion

user = get_user_model().objects.create_user("ann", password="pw-for-the-test")
api_quota_set(user=user, monthly_limit=3)
token, key = api_token_create(user=user, name="t")
asset = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT")
now = timezone.now().replace(minute=0, second=0, microsecond=0)
Candle.objects.create(asset=asset, open_time=now, close_time=now, open=1, high=1, low=1, close=1, volume=1,
                      quote_volume=1, trades=1, taker_buy_base_volume=1, taker_buy_quote_volume=1)
version = ModelVersion.objects.create(asset=asset, version=1, status="active", horizon=1, window=2)
Forecast.objects.create(asset=asset, model_version=version, base_time=now, last_close=1, horizon=1,
                        points=[{"time": "x", "close": 1.0, "lower": 0.5, "upper": 1.5}])
client = Client(HTTP_AUTHORIZATION=f"Token {key}")
statuses = [client.get("/api/v1/assets/btcusdt/forecast/").status_code for _ in range(5)]
found = token_lookup(key_hash=api_token_hash(key))
report = {
    "statuses": statuses,
    "used": api_usage_get(user=user).used,
    "limit": found.user.api_quota.monthly_limit,
    "last_used_at": type(found.last_used_at).__name__,
    "date_joined": type(found.user.date_joined).__name__,
}
api_token_revoke(user=user, token_id=token.pk)
report["after_revoke"] = client.get("/api/v1/usage/").status_code
print(json.dumps(report))
"""


def test_on_sqlite_the_api_counts_exactly_and_refuses_at_the_limit(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "makeusrich.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "only-for-this-test",
        "DEBUG": "1",  # plain http for the test client
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "statuses": [200, 200, 200, 429, 429],
        "used": 3,
        "limit": 3,
        "last_used_at": "datetime",  # the ORM's converters applied to the raw row
        "date_joined": "datetime",
        "after_revoke": 401,
    }
