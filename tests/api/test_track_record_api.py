import math

import pytest

from tests.api.conftest import HOUR, forecast_create, iso, version_create

URL = "/api/v1/assets/BTCUSDT/track-record/"


def _score(forecast, step: int, actual: float | None) -> dict:
    point = forecast.points[step]
    if actual is None:
        return {"time": point["time"], "actual": None}
    return {
        "time": point["time"],
        "actual": actual,
        "error": point["close"] - actual,
        "inside": point["lower"] <= actual <= point["upper"],
        "persistence_error": float(forecast.last_close) - actual,
    }


def _scored(version, base_time, last_close, actuals):
    forecast = forecast_create(version, base_time, last_close=last_close)
    forecast.scores = [_score(forecast, step, actual) for step, actual in enumerate(actuals)]
    forecast.fully_scored = len(actuals) == forecast.horizon
    forecast.save()
    return forecast


@pytest.fixture
def scored(market):
    """Three scored forecasts in the last week and one older than 8 days."""
    active, last = market["active"], market["last"]
    # Points close = last_close + step + 1, interval [last_close + step - 4, last_close + step + 6].
    a = _scored(active, last - 10 * HOUR, 100.0, [101.0, 104.0, 95.0, 110.0])  # errors 0, -2, 8, -6
    b = _scored(active, last - 5 * HOUR, 200.0, [199.0, None])  # error 2; an outage hour
    c = _scored(active, last - 4 * HOUR, 50.0, [])  # nothing has closed yet
    old = _scored(active, last - 9 * 24 * HOUR, 10.0, [30.0])
    return {"a": a, "b": b, "c": c, "old": old}


@pytest.mark.django_db
def test_it_aggregates_model_and_persistence_errors_per_step_and_overall(member_api, market, scored):
    response = member_api.get(URL, {"days": 7})

    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT" and body["days"] == 7
    assert body["window_end"] == iso(market["last"])
    assert body["forecasts"] == 2 and body["fully_scored"] == 1
    errors = [0.0, -2.0, 8.0, -6.0, 2.0]
    persistence = [-1.0, -4.0, 5.0, -10.0, 1.0]
    overall = body["overall"]
    assert overall["count"] == 5 and overall["step"] is None
    assert overall["mae"] == pytest.approx(sum(map(abs, errors)) / 5)
    assert overall["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 5))
    assert overall["persistence_mae"] == pytest.approx(sum(map(abs, persistence)) / 5)
    assert overall["persistence_rmse"] == pytest.approx(math.sqrt(sum(e * e for e in persistence) / 5))
    assert overall["skill_rmse"] == pytest.approx(1 - overall["rmse"] / overall["persistence_rmse"])
    # Inside: 101 in [96,106] yes, 104 in [97,107] yes, 95 in [98,108] no, 110 in [99,109] no, 199 yes.
    assert overall["coverage"] == pytest.approx(3 / 5)
    step1, step2, step3, step4 = body["per_step"]
    assert (step1["step"], step1["count"], step1["mae"]) == (1, 2, pytest.approx(1.0))
    assert (step2["step"], step2["count"], step2["mae"]) == (2, 1, pytest.approx(2.0))
    assert (step4["step"], step4["count"], step4["persistence_mae"]) == (4, 1, pytest.approx(10.0))
    assert [item["base_time"] for item in body["recent"]] == [iso(market["last"] - h * HOUR) for h in (5, 10)]
    latest = body["recent"][0]
    assert latest["model_version"] == 2 and latest["last_close"] == 200.0 and latest["fully_scored"] is False
    assert latest["stats"]["count"] == 1 and latest["stats"]["mae"] == pytest.approx(2.0)
    assert latest["scores"][1] == {"time": scored["b"].points[1]["time"], "actual": None}


@pytest.mark.django_db
def test_an_hour_forecast_by_two_versions_counts_once_with_the_later_forecast(member_api, market, scored):
    # v3 was promoted a few minutes after v2's forecast from the same candle, and stored its own.
    market["active"].status = "validated"
    market["active"].save(update_fields=["status"])
    newer = version_create(market["asset"], 3, status="active")
    replaced = scored["b"]
    later = _scored(newer, replaced.base_time, 200.0, [203.0, None])  # error -2 instead of 2
    assert later.generated_at > replaced.generated_at

    body = member_api.get(URL, {"days": 7}).json()

    assert body["forecasts"] == 2 and body["overall"]["count"] == 5
    assert [item["base_time"] for item in body["recent"]] == [iso(market["last"] - h * HOUR) for h in (5, 10)]
    assert body["recent"][0]["model_version"] == 3
    assert body["recent"][0]["stats"]["count"] == 1
    assert body["per_step"][0]["count"] == 2


@pytest.mark.django_db
def test_a_longer_window_takes_older_forecasts_in(member_api, market, scored):
    body = member_api.get(URL, {"days": 10}).json()
    assert body["forecasts"] == 3 and body["overall"]["count"] == 6


@pytest.mark.django_db
def test_skill_is_zero_when_both_are_exact_and_null_when_only_no_change_is(member_api, market):
    forecast = forecast_create(market["active"], market["last"] - 10 * HOUR, last_close=100.0)
    forecast.points[1]["close"] = 100.0  # the second hour forecasts no change
    forecast.scores = [_score(forecast, 0, 100.0), _score(forecast, 1, 100.0)]  # the price did not move
    forecast.save()

    step1, step2 = member_api.get(URL).json()["per_step"]

    # Hour 1 forecast 101 where no change was exact: worse by no finite ratio.
    assert (step1["rmse"], step1["persistence_rmse"], step1["skill_rmse"]) == (1.0, 0.0, None)
    assert (step2["rmse"], step2["persistence_rmse"], step2["skill_rmse"]) == (0.0, 0.0, 0.0)


@pytest.mark.django_db
def test_without_scores_the_figures_are_null(member_api, market):
    body = member_api.get(URL).json()
    assert body["days"] == 7 and body["forecasts"] == 0 and body["recent"] == [] and body["per_step"] == []
    assert body["overall"] == {
        "step": None,
        "count": 0,
        "mae": None,
        "rmse": None,
        "persistence_mae": None,
        "persistence_rmse": None,
        "skill_rmse": None,
        "coverage": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "91", "-1", "seven", "1e3", "7.0", "\u0663", "1_0"])
def test_it_rejects_days_outside_1_to_90(member_api, market, days):
    response = member_api.get(URL, {"days": days})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("days: ")


@pytest.mark.django_db
def test_a_repeated_days_is_a_400_even_when_each_value_is_good(member_api, market):
    response = member_api.get(f"{URL}?days=2&days=3")
    assert response.status_code == 400
    assert response.json()["detail"] == "days: given 2 times; give it once."


@pytest.mark.django_db
def test_track_record_of_an_unknown_asset_is_404_and_needs_a_token(api, member_api, market):
    assert member_api.get("/api/v1/assets/NOPE/track-record/").status_code == 404
    assert api.get(URL).status_code == 401
