"""The dashboard: every active asset's price, forecast, honest accuracy and state, in bounded queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from forecasting.models import ModelVersion
from markets.models import HOLES_ERROR_PREFIX, Asset
from tests.web import factories

pytestmark = pytest.mark.django_db
Status = ModelVersion.Status


def _dashboard(client, user) -> str:
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def _card(html: str, symbol: str) -> str:
    match = re.search(rf'<article class="card asset-card" data-symbol="{symbol}">(.*?)</article>', html, re.S)
    assert match, f"no card for {symbol}"
    return re.sub(r"\s+", " ", match.group(1))


def test_it_shows_price_24h_change_forecasts_and_skill_in_words(client, member, market):
    card = _card(_dashboard(client, member), "BTCUSDT")
    last, day_ago = market.candles[-1].close, market.candles[-25].close
    assert f"{float(last):,.2f}" in card
    change = (last - day_ago) / day_ago * 100
    assert f"{abs(float(change)):.2f} %" in card
    first, final = market.forecast.points[0], market.forecast.points[-1]
    assert (
        f"{first['close']:,.2f}" in card
        and f"{first['lower']:,.2f}" in card
        and f"{first['upper']:,.2f}" in card
    )
    assert f"{final['close']:,.2f}" in card and "In 24 hours" in card
    # factories.metrics: skill 0.12 at the next hour, -0.05 at the horizon's end.
    assert 'Next hour: <span class="up">12 % lower error than assuming no change' in card
    assert '24 hours ahead: <span class="down">worse than assuming no change (5 % higher error)' in card
    assert "model v2" in card
    assert 'data-state="stale"' not in card


def test_a_model_that_errs_where_no_change_was_exact_reads_as_worse(client, member, market):
    # The test split's price never moved one hour ahead: persistence RMSE 0, the model's 3.
    metrics = market.version.metrics
    metrics["rmse"][0], metrics["persistence_rmse"][0], metrics["skill_rmse"][0] = 3.0, 0.0, None
    market.version.save(update_fields=["metrics"])

    card = _card(_dashboard(client, member), "BTCUSDT")

    assert (
        'Next hour: <span class="down">worse than assuming no change, which was exact here '
        "(the price did not move)" in card
    )
    assert "not measured" not in card


def test_it_leaves_out_inactive_assets(client, member, market):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", is_active=False)
    html = _dashboard(client, member)
    assert 'data-symbol="BTCUSDT"' in html and 'data-symbol="ETHUSDT"' not in html


def test_its_queries_do_not_grow_with_the_number_of_assets(client, member, market):
    client.force_login(member)
    with CaptureQueriesContext(connection) as one_asset:
        assert client.get("/").status_code == 200
    for symbol, base in (("ETHUSDT", "ETH"), ("SOLUSDT", "SOL")):
        factories.market_create(asset=Asset.objects.create(symbol=symbol, base=base, quote="USDT"), scored=3)
    with CaptureQueriesContext(connection) as three_assets:
        html = client.get("/").content.decode()
    assert html.count('class="card asset-card"') == 3
    assert len(three_assets) == len(one_asset)
    assert len(one_asset) <= 7  # session, user, 4 panel reads, the retrain schedules


def test_it_says_when_no_asset_is_followed(client, member):
    html = _dashboard(client, member)
    assert 'data-state="no_assets"' in html and "No assets followed yet" in html


def test_it_says_when_there_is_no_price_data_yet(client, member, btc):
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert 'data-state="no_data"' in card and "No price data yet." in card
    assert "appear after the first sync" in card


def test_no_price_data_after_failed_syncs_promises_no_first_sync(client, member, btc):
    Asset.objects.filter(pk=btc.pk).update(last_sync_error="the replay source only has BTCUSDT")
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "The syncs have not brought any so far" in card and "after the first sync" not in card
    assert "Market data for this asset is not updating; the operators see why in the admin." in card


def test_it_says_no_model_yet_before_the_first_training(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert 'data-state="no_model"' in card and "No model yet." in card


def test_it_says_training_is_in_progress(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.TRAINING)
    factories.lease_hold(asset=btc)  # a running training holds the asset's lease
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "No model yet: training in progress." in card and "Version 1 started" in card
    assert "no sign of progress" not in card


def test_a_training_whose_lease_was_not_renewed_lately_shows_no_sign_of_progress(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.TRAINING)
    factories.lease_hold(asset=btc, renewed_ago=timedelta(minutes=15, seconds=5))
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "training in progress." in card and "with no sign of progress for 15 minutes;" in card


@pytest.mark.parametrize("lease", ["expired", "released", "never taken"])
def test_a_training_whose_worker_is_gone_is_not_said_to_be_in_progress(client, member, btc, lease):
    # A killed worker leaves its version "training" until the next run takes the lease.
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.TRAINING)
    if lease == "expired":
        factories.lease_hold(asset=btc, renewed_ago=timedelta(minutes=41))
    elif lease == "released":
        held = factories.lease_hold(asset=btc)
        held.owner, held.expires_at = "", None
        held.save()

    card = _card(_dashboard(client, member), "BTCUSDT")

    assert "training in progress" not in card and 'class="badge training"' not in card
    assert 'data-state="interrupted"' in card
    assert "No model yet: the last training stopped before finishing.</strong> Version 1 started" in card
    assert "the next scheduled retrain starts again" in card


def test_a_retraining_whose_worker_is_gone_is_not_said_to_be_training_now(client, member, market):
    factories.version_create(asset=market.asset, version=3, status=Status.TRAINING)
    factories.lease_hold(asset=market.asset, renewed_ago=timedelta(hours=1))
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "is training now" not in card
    assert "The latest training (v3) stopped before finishing; v2 keeps serving" in card


def test_it_tells_staff_training_failed_and_why(client, staff, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.FAILED, reason="only 30 candles, need 500")
    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert "Training failed." in card and "only 30 candles, need 500" in card


def test_it_tells_members_training_failed_without_the_operators_error(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.FAILED, reason="0 windows of 120 + 24 hours")
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "Training failed; the operators see why in the admin." in card and "0 windows" not in card


GATE_REASON = "kept out of service: mean validation skill -0.0213 vs active v1 +0.0004 (tolerance 0.01)"


def test_it_tells_staff_why_a_trained_version_is_not_in_service(client, staff, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=2, status=Status.VALIDATED, reason=GATE_REASON)
    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert 'data-state="not_promoted"' in card
    # Once: the gate's reason already says it was kept out of service.
    assert f"No model in service.</strong> Version 2: {GATE_REASON}." in card
    assert card.count("kept out of service") == 1


def test_it_tells_members_no_model_is_in_service_without_the_gates_reason(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=2, status=Status.VALIDATED, reason=GATE_REASON)
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert 'data-state="not_promoted"' in card
    assert "No model is in service for BTC/USDT; the operators see why in the admin." in card
    assert "validation skill" not in card and "kept out of service" not in card


def test_it_says_the_first_forecast_is_coming_when_the_model_has_none_yet(client, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.ACTIVE)
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert 'data-state="no_forecast"' in card and "first forecast is being computed" in card


def test_it_warns_staff_when_the_data_is_stale_and_says_why(client, staff, market):
    Asset.objects.filter(pk=market.asset.pk).update(
        last_synced_at=timezone.now() - timedelta(hours=7), last_sync_error="Binance answered 418"
    )
    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert "This forecast may be out of date." in card
    assert "Market data sync is failing: Binance answered 418" in card


def test_it_warns_members_of_stale_data_without_the_sync_error(client, member, market):
    Asset.objects.filter(pk=market.asset.pk).update(
        last_synced_at=timezone.now() - timedelta(hours=7), last_sync_error="Binance answered 418"
    )
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "This forecast may be out of date." in card
    assert "Market data for this asset is not updating; the operators see why in the admin" in card
    assert "418" not in card


def test_it_notes_a_failed_retraining_while_the_active_model_keeps_serving(client, staff, member, market):
    factories.version_create(asset=market.asset, version=3, status=Status.FAILED, reason="time limit reached")
    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert "The latest training (v3) failed: time limit reached. v2 keeps serving." in card
    assert "model v2" in card
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert (
        "failed; the operators see why in the admin. v2 keeps serving." in card and "time limit" not in card
    )


def test_it_shows_the_next_retrain_from_the_beat_schedules(client, member):
    PeriodicTask.objects.filter(name__startswith="retrain-").delete()
    hourly = CrontabSchedule.objects.create(minute="5", hour="*", timezone="UTC")
    PeriodicTask.objects.create(
        name="retrain-warm-hourly", task="forecasting.tasks.retrain_active_assets", crontab=hourly
    )
    html = _dashboard(client, member)
    section = re.sub(r"\s+", " ", html.split('id="retrain-schedule"')[1])
    assert "Quick retrain (fine-tune and recalibrate):" in section
    assert re.search(
        r"Quick retrain \(fine-tune and recalibrate\): \d+ [A-Z][a-z]{2} \d{4} \d\d:05 UTC", section
    )
    assert "Full retrain" not in section


def test_it_says_when_no_retrain_is_scheduled(client, member):
    PeriodicTask.objects.filter(name__startswith="retrain-").update(enabled=False)
    assert "No retraining is scheduled" in _dashboard(client, member)


def test_it_reports_a_failing_sync_even_before_any_forecast(client, staff, btc):
    Asset.objects.filter(pk=btc.pk).update(last_sync_error="connection refused by api.binance.com")
    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert 'data-state="sync_failing"' in card and "connection refused by api.binance.com" in card


def test_members_see_a_plain_line_for_a_failing_sync_not_the_operators_error(client, member, btc):
    error = "the replay source only has BTCUSDT (the bundled data); ETHUSDT needs MARKET_DATA_SOURCE=binance"
    Asset.objects.filter(pk=btc.pk).update(last_sync_error=error)
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "Market data for this asset is not updating; the operators see why in the admin." in card
    assert "MARKET_DATA_SOURCE" not in card


def test_it_says_why_the_forecast_is_flat_when_the_model_serves_no_change(client, member, market):
    ModelVersion.objects.filter(pk=market.version.pk).update(
        preprocessing={"target": {"shrink": [0.0] * factories.HORIZON}}
    )
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert (
        'data-field="no-change">On held-out data the model did not beat “no change”, so it forecasts no change'
        in card
    )


def test_it_says_the_prices_are_replayed_history_and_which_dates(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    html = _dashboard(client, member)
    note = re.sub(r"\s+", " ", html.split('data-state="replay"')[1].split("</div>")[0])
    note = re.sub(r'<span class="date">([^<]*)</span>', r"\1", note)  # each date kept on one line
    first, last = market.candles[0].open_time, market.candles[-1].open_time + factories.HOUR
    assert "BTC/USDT: replayed prices, not live." in note and "historical Binance candles" in note
    assert f"{first.day} {first:%b %Y} to {last.day} {last:%b %Y}" in note


def test_the_replay_note_names_only_the_replayed_asset_with_its_own_dates(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    # Imported years earlier: the replay source serves only the bundled BTCUSDT.
    factories.candles_create(asset=eth, count=48, last=factories.last_full_hour() - timedelta(days=1500))
    html = _dashboard(client, member)
    notes = re.findall(r'data-state="replay"(.*?)</div>', html, re.S)
    assert len(notes) == 1 and 'data-symbol="BTCUSDT"' in notes[0]
    note = re.sub(r"<[^>]+>|\s+", " ", notes[0])
    first = market.candles[0].open_time
    assert f"{first.day} {first:%b %Y}" in re.sub(r"\s+", " ", note)
    old = factories.last_full_hour() - timedelta(days=1500)
    assert f"{old:%Y}" not in note


def test_live_prices_carry_no_replay_note(client, member, market, settings):
    settings.MARKET_DATA_SOURCE = "binance"
    assert 'data-state="replay"' not in _dashboard(client, member)


def test_the_card_dates_its_last_price_as_a_close_in_utc(client, member, market):
    card = _card(_dashboard(client, member), "BTCUSDT")
    close = market.candles[-1].open_time + factories.HOUR
    # Day, month, year and time, then the time zone: as every date of the site and the admin.
    assert f'Last price at <span class="date">{close.day} {close:%b %Y %H:%M} UTC</span>' in card
    due = close + factories.HOUR
    assert f'Next hour<br><span class="small">at {due.day} {due:%b %Y %H:%M} UTC</span>' in card


def test_a_failed_hole_fill_is_told_apart_from_a_failing_sync(client, staff, member, market):
    error = "kline opened at 2022-02-20 06:00 UTC: close 999999 is outside [low, high]"
    Asset.objects.filter(pk=market.asset.pk).update(last_sync_error=f"{HOLES_ERROR_PREFIX}{error}")
    assert "999999" not in _card(_dashboard(client, member), "BTCUSDT")
    card = _card(_dashboard(client, staff), "BTCUSDT")
    # New candles are synced: the forecast is current, so no warning, but the error is shown.
    assert 'data-state="sync_failing"' not in card and 'data-state="stale"' not in card
    assert 'data-state="holes_failing"' in card
    assert f"older missing hours could not be fetched: {error}" in card


def _horizon_end(card: str) -> str:
    return card.split('data-field="horizon-end">')[1].split("</dd>")[0]


def test_the_far_band_says_how_often_it_held_at_that_hour_on_held_out_data(client, member, market):
    end = _horizon_end(_card(_dashboard(client, member), "BTCUSDT"))
    assert "80 % likely between" in end
    assert "held 81 % of the time at 24 h on held-out data" in end


def test_a_far_band_that_held_far_from_80_percent_is_not_called_80_percent_likely(client, member, market):
    metrics = {**market.version.metrics, "coverage_80": [0.81] * 23 + [0.70]}
    ModelVersion.objects.filter(pk=market.version.pk).update(metrics=metrics)
    card = _card(_dashboard(client, member), "BTCUSDT")
    end = _horizon_end(card)
    assert "80 % likely" not in end and "Meant as an 80 % range" in end
    assert "held 70 % of the time at 24 h on held-out data" in end
    # The next hour's band held 81 %: it keeps its plain words.
    assert "80 % likely between" in card.split('data-field="next-hour">')[1].split("</dd>")[0]


def test_a_sync_under_a_minute_ago_reads_just_now(client, member, market):
    freshness = _card(_dashboard(client, member), "BTCUSDT").split('data-field="freshness">')[1]
    assert "synced just now" in freshness and "0 minutes" not in freshness
    Asset.objects.filter(pk=market.asset.pk).update(last_synced_at=timezone.now() - timedelta(hours=7))
    assert "synced 7 hours ago" in _card(_dashboard(client, member), "BTCUSDT")


BAD_ARTIFACT = (
    "the active model cannot be loaded: artifact 'BTCUSDT/v1-0a1b2c3d.onnx' is missing from storage"
)


def test_it_says_why_an_active_model_has_no_forecast_when_its_refresh_failed(client, staff, member, btc):
    factories.candles_create(asset=btc, count=30, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=Status.ACTIVE)
    Asset.objects.filter(pk=btc.pk).update(forecast_problem=BAD_ARTIFACT)

    card = _card(_dashboard(client, staff), "BTCUSDT")
    assert 'data-state="forecast_failing"' in card and "being computed" not in card
    assert "Model v1 has no forecast yet.</strong> The active model cannot be loaded: artifact " in card
    assert "v1-0a1b2c3d.onnx&#x27; is missing from storage." in card

    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "Model v1 has no forecast yet.</strong> The active model cannot be loaded, so no newer" in card
    assert "missing from storage" not in card


def test_it_warns_members_the_model_cannot_be_loaded_without_its_artifacts_name(client, member, market):
    Asset.objects.filter(pk=market.asset.pk).update(forecast_problem=BAD_ARTIFACT)
    card = _card(_dashboard(client, member), "BTCUSDT")
    assert "This forecast may be out of date." in card
    assert "The active model cannot be loaded, so no newer forecast is made" in card
    assert "missing from storage" not in card
