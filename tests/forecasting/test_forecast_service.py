import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from forecasting import services
from forecasting.models import Forecast
from forecasting.serving import sessions_cached, sessions_clear

from .conftest import START, candles_create

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def active(tiny_asset):
    sessions_clear()
    version = services.model_version_train(asset=tiny_asset)
    assert version.status == "active", version.reason
    return version


def test_it_stores_the_active_models_forecast_from_the_last_candle(tiny_asset, active):
    forecast = services.forecast_refresh(asset=tiny_asset)

    last = START + 599 * HOUR
    assert forecast.base_time == last and forecast.model_version == active
    assert forecast.horizon == 6 and len(forecast.points) == 6
    expected_times = [(last + (i + 1) * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(6)]
    assert [p["time"] for p in forecast.points] == expected_times
    assert all(p["lower"] <= p["close"] <= p["upper"] for p in forecast.points)
    assert abs(forecast.points[0]["close"] / float(forecast.last_close) - 1) < 0.2
    assert sessions_cached() == {tiny_asset.pk: active.pk}


def test_refreshing_twice_from_the_same_candle_stores_one_forecast(tiny_asset, active):
    first = services.forecast_refresh(asset=tiny_asset)
    second = services.forecast_refresh(asset=tiny_asset)
    assert first.pk == second.pk and Forecast.objects.count() == 1


def test_no_active_version_means_no_forecast(tiny_asset):
    assert services.forecast_refresh(asset=tiny_asset) is None
    assert not Forecast.objects.exists()


def test_forecasts_are_scored_as_the_realised_candles_arrive(tiny_asset, active):
    forecast = services.forecast_refresh(asset=tiny_asset)
    candles_create(tiny_asset, 3, start=forecast.base_time + HOUR, seed=3)

    services.forecasts_score(asset=tiny_asset)

    forecast.refresh_from_db()
    assert len(forecast.scores) == 3 and not forecast.fully_scored
    closes = dict(tiny_asset.candles.values_list("open_time", "close"))
    for step, score in enumerate(forecast.scores):
        actual = float(closes[forecast.base_time + (step + 1) * HOUR])
        assert score["actual"] == pytest.approx(actual)
        assert score["error"] == pytest.approx(forecast.points[step]["close"] - actual)
        assert score["persistence_error"] == pytest.approx(float(forecast.last_close) - actual)
        assert score["inside"] == (forecast.points[step]["lower"] <= actual <= forecast.points[step]["upper"])

    candles_create(tiny_asset, 3, start=forecast.base_time + 4 * HOUR, seed=4)
    services.forecasts_score(asset=tiny_asset)
    forecast.refresh_from_db()
    assert len(forecast.scores) == 6 and forecast.fully_scored


def test_errors_are_stored_to_the_prices_digits_not_float_noise(tiny_asset, active):
    forecast = services.forecast_refresh(asset=tiny_asset)
    forecast.last_close = Decimal("38908.27")
    forecast.points[0]["close"] = 38908.29
    forecast.save(update_fields=["last_close", "points"])
    candles_create(tiny_asset, 1, start=forecast.base_time + HOUR, seed=3)
    tiny_asset.candles.filter(open_time=forecast.base_time + HOUR).update(close=Decimal("38908.26"))
    assert 38908.27 - 38908.26 != 0.01 and 38908.29 - 38908.26 != 0.03  # what float subtraction gives

    services.forecasts_score(asset=tiny_asset)

    forecast.refresh_from_db()
    assert forecast.scores[0]["persistence_error"] == 0.01
    assert forecast.scores[0]["error"] == 0.03


def test_an_hour_lost_to_an_outage_is_scored_as_missing_not_invented(tiny_asset, active):
    forecast = services.forecast_refresh(asset=tiny_asset)
    candles_create(tiny_asset, 6, start=forecast.base_time + HOUR, seed=5, skip={1})

    services.forecasts_score(asset=tiny_asset)

    forecast.refresh_from_db()
    assert forecast.fully_scored
    assert forecast.scores[1] == {"time": forecast.points[1]["time"], "actual": None}
    assert all(s["actual"] is not None for i, s in enumerate(forecast.scores) if i != 1)


def test_an_hour_filled_later_by_a_sync_is_scored_again(tiny_asset, active):
    forecast = services.forecast_refresh(asset=tiny_asset)
    candles_create(tiny_asset, 6, start=forecast.base_time + HOUR, seed=5, skip={1})
    services.forecasts_score(asset=tiny_asset)
    forecast.refresh_from_db()
    before = forecast.scores
    assert forecast.fully_scored and before[1]["actual"] is None
    filled = forecast.base_time + 2 * HOUR
    candles_create(tiny_asset, 1, start=filled, seed=9)  # the hole, filled by a sync

    # Hours no stored forecast was scored at change nothing.
    assert services.forecasts_rescore(asset=tiny_asset, hours=[forecast.base_time - HOUR]) == 0
    assert services.forecasts_rescore(asset=tiny_asset, hours=[filled]) == 1

    forecast.refresh_from_db()
    actual = float(tiny_asset.candles.get(open_time=filled).close)
    assert forecast.fully_scored
    assert forecast.scores[1]["actual"] == pytest.approx(actual)
    assert forecast.scores[1]["error"] == pytest.approx(forecast.points[1]["close"] - actual)
    assert [s for i, s in enumerate(forecast.scores) if i != 1] == [s for i, s in enumerate(before) if i != 1]


def test_pruning_deletes_only_scored_forecasts_past_the_limit(tiny_asset, active):
    old = services.forecast_refresh(asset=tiny_asset)
    candles_create(tiny_asset, 6, start=old.base_time + HOUR, seed=6)
    recent = services.forecast_refresh(asset=tiny_asset)  # scores `old`, stores a new one
    old.refresh_from_db()
    assert old.fully_scored and not recent.fully_scored
    Forecast.objects.update(generated_at=timezone.now() - dt.timedelta(days=100))

    assert services.forecasts_prune(older_than_days=90) == 1
    assert list(Forecast.objects.values_list("pk", flat=True)) == [recent.pk]


def _tamper(version) -> None:
    from django.core.files.storage import storages

    with open(storages["artifacts"].path(version.artifact_name), "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02\x03")
    sessions_clear()


def test_a_bad_artifact_is_recorded_on_the_asset_until_a_forecast_is_stored_again(tiny_asset, active):
    from django.core.files.storage import storages

    good = storages["artifacts"].open(active.artifact_name, "rb").read()
    _tamper(active)
    candles_create(tiny_asset, 1, start=START + 600 * HOUR, seed=4)

    forecast, problem = services.forecast_refresh_if_possible(asset=tiny_asset)

    assert forecast is None and "artifact is bad" in problem
    tiny_asset.refresh_from_db()
    assert tiny_asset.model_unloadable
    assert tiny_asset.forecast_problem.startswith("the active model cannot be loaded: artifact ")
    assert "has sha256" in tiny_asset.forecast_problem and "expected" in tiny_asset.forecast_problem
    since = tiny_asset.forecast_problem_since
    assert since is not None

    services.forecast_refresh_if_possible(asset=tiny_asset)  # an hour later, still bad
    tiny_asset.refresh_from_db()
    assert tiny_asset.forecast_problem_since == since  # since the first failure

    with storages["artifacts"].open(active.artifact_name, "wb") as handle:
        handle.write(good)
    forecast, problem = services.forecast_refresh_if_possible(asset=tiny_asset)

    assert forecast is not None and problem is None
    tiny_asset.refresh_from_db()
    assert tiny_asset.forecast_problem == "" and tiny_asset.forecast_problem_since is None


def test_a_failure_that_a_concurrent_refresh_already_overcame_is_not_recorded(tiny_asset, active):
    from forecasting.services.forecasts import _forecast_problem_record

    # The hourly refresh failed on a version an admin has replaced since; the activation's
    # refresh stored the active version's forecast from the newest candle meanwhile.
    services.forecast_refresh(asset=tiny_asset)
    _forecast_problem_record(tiny_asset, "the active model cannot be loaded: artifact 'x' is missing")
    tiny_asset.refresh_from_db()
    assert tiny_asset.forecast_problem == ""

    candles_create(tiny_asset, 1, start=START + 600 * HOUR, seed=4)  # nothing forecast from it yet
    _forecast_problem_record(tiny_asset, "the active model cannot be loaded: artifact 'x' is missing")
    tiny_asset.refresh_from_db()
    assert tiny_asset.model_unloadable


def test_too_few_recent_candles_are_recorded_as_the_forecast_problem(asset_after_outage):
    services.model_version_train(asset=asset_after_outage)

    asset_after_outage.refresh_from_db()
    assert asset_after_outage.forecast_problem.startswith(
        "no newer forecast until enough recent candles arrive:"
    )
    assert "miss 12 candles" in asset_after_outage.forecast_problem
    assert not asset_after_outage.model_unloadable
