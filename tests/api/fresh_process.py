"""Run a script against the app in a fresh interpreter on a new SQLite file.

For what a test process cannot show: which modules serving imports (this
process has imported everything already) and `make run`'s default database
(CI's own test database is PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prepended to every script: a migrated database with BTCUSDT, one candle, an
# active version and its forecast (`asset`, `version`, `now` are defined).
SEED = r"""
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from markets.models import Asset, Candle
from forecasting.models import Forecast, ModelVersion

asset = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT")
now = timezone.now().replace(minute=0, second=0, microsecond=0)
Candle.objects.create(asset=asset, open_time=now, close_time=now, open=1, high=1, low=1, close=1, volume=1,
                      quote_volume=1, trades=1, taker_buy_base_volume=1, taker_buy_quote_volume=1)
version = ModelVersion.objects.create(asset=asset, version=1, status="active", horizon=1, window=2)
Forecast.objects.create(asset=asset, model_version=version, base_time=now, last_close=1, horizon=1,
                        points=[{"time": "x", "close": 1.0, "lower": 0.5, "upper": 1.5}])
"""


def run_script(tmp_path: Path, script: str) -> dict:
    """SEED + `script` on a new SQLite file; returns the JSON the script printed last."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "makeusrich.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "only-for-this-test",
        # DEBUG: plain http and static URLs without a collectstatic manifest; imports are the same.
        "DEBUG": "1",
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)  # the embedded broker is enough to enqueue a retrain
    result = subprocess.run(
        [sys.executable, "-c", SEED + script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
