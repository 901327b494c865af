"""Floats in API responses keep 12 significant digits: no float noise, no lost digits, same shape."""

import json
from decimal import Decimal

import pytest

from forecasting.models import Forecast, ModelVersion
from makeusrich.formats import api_float, api_floats
from markets.models import Candle
from tests.api.conftest import METRICS, iso

FORECAST = "/api/v1/assets/BTCUSDT/forecast/"
NOISY_MAE = 86.05999999999767
TINY = 0.00001234 * 7 / 7  # 1.2339999999999999e-05: a tiny coin's price with noise in its last digit


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (NOISY_MAE, 86.06),
        (0.1 + 0.2, 0.3),
        (38908.270000000004, 38908.27),
        (TINY, 1.234e-05),
        (1.2345678901e-9, 1.2345678901e-9),  # tiny, but every digit is information
        (0.8333333333333334, 0.833333333333),
        (123456789.123, 123456789.123),
        (0.0, 0.0),
        (-5.000000000000001, -5.0),
    ],
)
def test_api_float_drops_the_noise_and_keeps_the_digits(value, written):
    assert api_float(value) == written
    assert repr(api_float(value)) == repr(written)


def test_a_difference_of_prices_is_rounded_at_the_prices_precision():
    error = 38908.27 - 38908.26  # 0.00999999999476131: the noise is the prices', cancelled
    assert api_float(error) == 0.00999999999476  # at its own 12 digits the noise stays
    assert api_float(error, scale=38908.26) == 0.01
    assert api_float(TINY - 0.00001233, scale=0.00001233) == 1e-08
    assert api_float(8.169999999998254, scale=1.5) == 8.17  # a scale below the value changes nothing


def test_every_float_in_nested_data_is_rounded_and_nothing_else_changes():
    data = {"a": [NOISY_MAE, None, 3, True, "0.30000000000000004"], "b": {"c": (0.1 + 0.2,)}}
    assert api_floats(data) == {"a": [86.06, None, 3, True, "0.30000000000000004"], "b": {"c": [0.3]}}


@pytest.fixture
def noisy(market):
    """The active version's metrics and latest forecast as numpy writes them, with float noise."""
    metrics = {**METRICS, "mae": [NOISY_MAE, 9.0, 10.0, 11.000000000000002], "coverage_80": [2 / 3] * 4}
    ModelVersion.objects.filter(pk=market["active"].pk).update(metrics=metrics)
    Forecast.objects.filter(pk=market["forecast"].pk).update(
        points=[
            {**point, "close": 38908.270000000004, "lower": 38620.100000000006, "upper": TINY}
            for point in market["forecast"].points
        ]
    )
    return market


@pytest.mark.django_db
def test_the_forecast_has_no_float_noise_and_the_same_shape(member_api, noisy):
    response = member_api.get(FORECAST)

    text = response.content.decode()
    assert "86.0599" not in text and "38908.270000" not in text and "1.2339999" not in text
    body = json.loads(text)
    assert list(body) == [
        "symbol",
        "model_version",
        "generated_at",
        "last_candle_time",
        "last_close",
        "horizon_hours",
        "points",
        "stale",
        "stale_reason",
        "metrics",
    ]
    assert body["metrics"]["mae"] == [86.06, 9.0, 10.0, 11.0]
    assert body["metrics"]["coverage_80"] == [0.666666666667] * 4
    assert body["metrics"]["rmse"] == METRICS["rmse"]
    assert body["points"][0] == {
        "time": noisy["forecast"].points[0]["time"],
        "close": 38908.27,
        "lower": 38620.1,
        "upper": 1.234e-05,
    }
    assert all(set(point) == {"time", "close", "lower", "upper"} for point in body["points"])


@pytest.mark.django_db
def test_the_cached_forecast_body_is_the_rounded_one(member_api, noisy, settings):
    settings.API_CACHE_SECONDS = 60
    first = member_api.get(FORECAST).content
    ModelVersion.objects.filter(pk=noisy["active"].pk).update(metrics=METRICS)

    # The body is rounded once, when it is rendered, and reused as it is.
    assert member_api.get(FORECAST).content == first
    assert json.loads(first)["metrics"]["mae"][0] == 86.06 and b"86.0599" not in first


@pytest.mark.django_db
def test_models_and_assets_round_their_floats_too(member_api, noisy):
    Candle.objects.filter(pk=noisy["candles"][-1].pk).update(close=Decimal("0.00001234"))

    models = member_api.get("/api/v1/assets/BTCUSDT/models/").json()
    asset = member_api.get("/api/v1/assets/BTCUSDT/").json()

    assert models["versions"][0]["metrics"]["mae"][0] == 86.06
    assert asset["last_price"] == 1.234e-05  # a tiny price keeps its digits
    assert asset["forecast"]["final_close"] == 38908.27 and asset["forecast"]["final_upper"] == 1.234e-05


@pytest.mark.django_db
def test_track_record_errors_are_rounded_at_the_prices_precision(member_api, market):
    forecast = market["forecast"]
    point = {**forecast.points[0], "close": 38908.27}
    forecast.points = [point]
    forecast.last_close = Decimal("38908.25")
    forecast.scores = [
        {
            "time": point["time"],
            "actual": 38908.26,
            "error": 38908.27 - 38908.26,  # 0.00999999999476131
            "inside": False,
            "persistence_error": 38908.25 - 38908.26,  # -0.010000000002037268
        }
    ]
    forecast.save()

    body = member_api.get("/api/v1/assets/BTCUSDT/track-record/").json()

    (score,) = next(f for f in body["recent"] if f["base_time"] == iso(market["last"]))["scores"]
    assert score == {
        "time": point["time"],
        "actual": 38908.26,
        "error": 0.01,
        "inside": False,
        "persistence_error": -0.01,
    }
