"""The Asset and Candle admin: lists, gap report, actions, read-only candles."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from markets.models import HOLES_ERROR_PREFIX, Asset, Candle, ConfirmedOutage
from markets.selectors import asset_unconfirmed_gaps
from markets.services import candles_upsert
from markets.sources.replay import ReplaySource
from tests.broker import queued_message_take

pytestmark = pytest.mark.django_db

ASSETS = "/admin/markets/asset/"


@pytest.fixture
def admin_client(client, staff, settings):
    # Plain http test client; with DEBUG off the manifest storage would need collectstatic.
    settings.SECURE_SSL_REDIRECT = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    client.force_login(staff)
    return client


def _staff_with(client, *codenames: str):
    user = get_user_model().objects.create_user("support", password="correct horse battery", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="markets", codename__in=codenames)
    )
    client.force_login(user)
    return client


@pytest.fixture
def bundled(settings) -> tuple:
    return ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()


def test_the_asset_list_shows_counts_without_a_query_per_asset(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:100])
    with CaptureQueriesContext(connection) as one:
        response = admin_client.get(ASSETS)
    assert response.status_code == 200
    assert b"10 Mar 2021 20:00 UTC" in response.content  # last candle column

    for symbol in ("ETHUSDT", "BNBUSDT", "SOLUSDT"):
        Asset.objects.create(symbol=symbol, base=symbol[:-4], quote="USDT")
    with CaptureQueriesContext(connection) as four:
        admin_client.get(ASSETS)

    assert len(four) == len(one)


def test_the_list_filters_by_sync_status_and_searches(admin_client, btc):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", last_sync_error="HTTP 503")

    failed = admin_client.get(ASSETS, {"sync": "failed"}).content.decode()
    searched = admin_client.get(ASSETS, {"q": "btc"}).content.decode()

    assert "ETHUSDT" in failed and "BTCUSDT" not in failed
    assert "BTCUSDT" in searched and "ETHUSDT" not in searched


def test_the_list_tells_a_failed_hole_filling_from_a_failed_sync(admin_client, btc):
    holes = f"{HOLES_ERROR_PREFIX}Binance sent a bad kline for BTCUSDT (not retried)"
    Asset.objects.filter(pk=btc.pk).update(last_sync_error=holes)
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", last_sync_error="HTTP 503")

    html = admin_client.get(ASSETS, {"sync": "failed"}).content.decode()

    assert "new candles OK, filling holes failed: Binance sent a bad kline" in html
    assert "failed: HTTP 503" in html


def test_the_change_view_shows_the_gap_report(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:1200])

    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()

    assert "2 gap(s), 5 missing hour(s)" in page
    # Dated as the rest of the admin and the site write dates, year and time zone included.
    assert "20 Apr 2021 02:00 UTC to 20 Apr 2021 03:00 UTC: 2 missing hours" in page
    assert "1200 hourly candles, 6 Mar 2021 17:00 UTC to " in page


def test_the_gap_report_tells_confirmed_outages_from_hours_not_asked_for_yet(
    admin_client, btc, bundled, settings
):
    settings.MARKET_DATA_SOURCE = "replay"
    candles_upsert(asset=btc, rows=bundled[:1200])
    ConfirmedOutage.objects.create(
        asset=btc,
        source="replay",
        first_hour=datetime(2021, 4, 20, 2, tzinfo=UTC),
        last_hour=datetime(2021, 4, 20, 3, tzinfo=UTC),
    )

    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()

    assert "2 confirmed empty by replay" in page and "3 not asked for yet" in page
    assert "20 Apr 2021 02:00 UTC to 20 Apr 2021 03:00 UTC: 2 missing hours — confirmed empty" in page
    assert "25 Apr 2021 05:00 UTC to 25 Apr 2021 07:00 UTC: 3 missing hours — not asked for yet" in page


def test_the_gap_report_says_hours_outside_the_replay_data_are_never_asked(
    admin_client, btc, bundled, settings, write_csv
):
    # The replay's file ends on 21 Apr 2021: the 20 Apr outage lies inside it, the 25 Apr one after.
    settings.MARKET_DATA_SOURCE = "replay"
    settings.BUNDLED_DATA_FILE = write_csv(0, 1100, name="btcusdt_1h_slice.csv")
    candles_upsert(asset=btc, rows=bundled[:1200])

    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()

    assert "2 not asked for yet (the next syncs fetch them), 3 outside the replay data" in page
    assert "20 Apr 2021 02:00 UTC to 20 Apr 2021 03:00 UTC: 2 missing hours — not asked for yet" in page
    assert (
        "25 Apr 2021 05:00 UTC to 25 Apr 2021 07:00 UTC: 3 missing hours — outside the replay data: never asked"
        in page
    )


def test_the_gap_report_says_a_symbol_the_replay_lacks_is_never_asked(admin_client, bundled, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    candles_upsert(asset=eth, rows=bundled[:1200])  # imported: the replay holds only BTCUSDT

    page = admin_client.get(f"{ASSETS}{eth.pk}/change/").content.decode()

    assert "0 not asked for yet (the next syncs fetch them), 5 outside the replay data" in page
    assert page.count("outside the replay data: never asked") == 2


def test_with_the_exchange_every_missing_hour_can_still_be_asked_for(admin_client, bundled, settings):
    settings.MARKET_DATA_SOURCE = "binance"  # no data bound: coverage is None, nothing is fetched here
    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    candles_upsert(asset=eth, rows=bundled[:1200])

    page = admin_client.get(f"{ASSETS}{eth.pk}/change/").content.decode()

    assert "5 not asked for yet (the next syncs fetch them):" in page and "never asked" not in page


def test_the_last_retrain_tasks_outcome_is_shown_in_the_list_and_read_only_on_the_page(admin_client, btc):
    outcome = "warm retrain skipped: BTCUSDT is already being trained by worker-1:42 (lease until ...)"
    when = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
    Asset.objects.filter(pk=btc.pk).update(last_train_outcome=outcome, last_train_outcome_at=when)

    listed = admin_client.get(ASSETS).content.decode()
    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()
    admin_client.post(
        f"{ASSETS}{btc.pk}/change/",
        {"is_active": "on", "hyperparameters": "{}", "last_train_outcome": "edited by hand"},
    )

    assert (
        "25 Nov 2026 07:05 UTC<br><strong>skipped</strong> — warm retrain skipped: BTCUSDT is already"
        in listed
    )
    assert "Last retrain task" in page and outcome in page
    assert 'name="last_train_outcome"' not in page
    btc.refresh_from_db()
    assert btc.last_train_outcome == outcome


def test_a_failing_forecast_refresh_is_shown_in_the_list_and_read_only_on_the_page(admin_client, btc):
    problem = (
        "the active model cannot be loaded: artifact 'BTCUSDT/v3-0a1b2c3d.onnx' has sha256 9f86d081884c…, "
        "expected 2c26b46b68ff…; activate another version (the next retrain replaces it)"
    )
    since = datetime(2026, 11, 25, 8, 5, tzinfo=UTC)
    Asset.objects.filter(pk=btc.pk).update(forecast_problem=problem, forecast_problem_since=since)

    listed = admin_client.get(ASSETS).content.decode()
    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()

    assert (
        f'<span title="{escape(problem)}"><strong>forecast: model cannot be loaded</strong> since 25 Nov 2026 08:05 UTC'
        in listed
    )
    assert "Forecast problem" in page and escape(problem) in page
    assert 'name="forecast_problem"' not in page


@pytest.mark.parametrize(
    ("recorded", "headline"),
    [
        ({"version": 4, "status": "active", "reason": "its skill beats v3's"}, "v4 promoted"),
        (
            {"by": "manage.py train", "version": 5, "status": "validated", "reason": "v4 stays"},
            "v5 not promoted",
        ),
        ({"version": 6, "status": "failed", "reason": "too little gap-free data"}, "v6 failed"),
        ({"status": "skipped", "reason": "BTCUSDT: no candle newer than v4's data"}, "skipped"),
        ({"error": ValueError("unknown hyperparameter 'max_epoch'")}, "raised ValueError"),
    ],
)
def test_the_list_leads_the_last_retrain_with_what_came_of_it(admin_client, btc, recorded, headline):
    from forecasting.services import asset_train_outcome_record

    outcome = asset_train_outcome_record(asset=btc, mode="warm", **recorded)

    listed = admin_client.get(ASSETS).content.decode()
    assert f"<br><strong>{headline}</strong> — {escape(outcome)}</span>" in listed
    assert f'title="{escape(outcome)}"' in listed


def test_horizon_and_hyperparameters_are_editable_but_the_symbol_is_not(admin_client, btc):
    response = admin_client.post(
        f"{ASSETS}{btc.pk}/change/",
        {"symbol": "ETHUSDT", "is_active": "on", "horizon": "12", "hyperparameters": '{"max_epochs": 3}'},
    )

    assert response.status_code == 302, response.content
    btc.refresh_from_db()
    assert (btc.symbol, btc.horizon, btc.hyperparameters) == ("BTCUSDT", 12, {"max_epochs": 3})


def test_a_mistyped_hyperparameter_is_refused_and_nothing_changes(admin_client, btc):
    response = admin_client.post(
        f"{ASSETS}{btc.pk}/change/",
        {"is_active": "on", "horizon": "12", "hyperparameters": '{"epochs": 3}'},
    )

    assert response.status_code == 200
    assert "unknown hyperparameter &#x27;epochs&#x27;" in response.content.decode()
    btc.refresh_from_db()
    assert (btc.horizon, btc.hyperparameters) == (None, {})


def test_emptying_the_hyperparameters_field_clears_the_overrides(admin_client, btc):
    Asset.objects.filter(pk=btc.pk).update(hyperparameters={"max_epochs": 3})

    response = admin_client.post(f"{ASSETS}{btc.pk}/change/", {"is_active": "on", "hyperparameters": ""})

    assert response.status_code == 302, response.content  # the help text says: "Empty: the defaults."
    btc.refresh_from_db()
    assert btc.hyperparameters == {}


def test_activate_and_deactivate_actions(admin_client, btc):
    admin_client.post(ASSETS, {"action": "deactivate", "_selected_action": [btc.pk]})
    btc.refresh_from_db()
    assert not btc.is_active

    admin_client.post(ASSETS, {"action": "activate", "_selected_action": [btc.pk]})
    btc.refresh_from_db()
    assert btc.is_active


def test_sync_now_enqueues_a_sync_of_the_selected_assets(admin_client, btc):
    response = admin_client.post(ASSETS, {"action": "sync_now", "_selected_action": [btc.pk]}, follow=True)

    assert "Sync enqueued for BTCUSDT" in response.content.decode()
    message = queued_message_take(
        lambda m: (
            m.headers.get("task") == "markets.tasks.sync_asset" and m.headers.get("argsrepr") == "['BTCUSDT']"
        )
    )
    assert message is not None


def test_candles_are_listed_but_read_only(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:30])
    candle = Candle.objects.first()

    listing = admin_client.get("/admin/markets/candle/", {"asset__id__exact": btc.pk})
    detail = admin_client.get(f"/admin/markets/candle/{candle.pk}/change/")

    assert listing.status_code == 200 and b"6 Mar 2021 17:00 UTC" in listing.content
    assert admin_client.get("/admin/markets/candle/add/").status_code == 403
    assert detail.status_code == 200 and b'name="_save"' not in detail.content


def test_candle_prices_are_shown_without_the_columns_padding(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:1])
    candle = Candle.objects.get()
    Candle.objects.filter(pk=candle.pk).update(open="37814.4700000000", volume="100.0000000000")

    listing = admin_client.get("/admin/markets/candle/").content.decode()
    detail = admin_client.get(f"/admin/markets/candle/{candle.pk}/change/").content.decode()

    for html in (listing, detail):
        assert ">37814.47<" in html and ">100<" in html
        assert "37814.4700" not in html and "0000000000" not in html
    assert "Taker buy quote volume" in detail  # every stored field is still on the page
    candle.refresh_from_db()
    assert str(candle.open) == "37814.4700000000"


def test_retrain_now_queues_a_full_retrain_of_each_selected_asset(admin_client, btc):
    response = admin_client.post(ASSETS, {"action": "retrain_now", "_selected_action": [btc.pk]}, follow=True)

    assert "Full retrain enqueued for BTCUSDT" in response.content.decode()
    message = queued_message_take(
        lambda m: (
            m.headers.get("task") == "forecasting.tasks.retrain_asset"
            and m.headers.get("argsrepr") == "['BTCUSDT', 'full']"
        )
    )
    assert message is not None
    # Until a worker runs it, the asset says so rather than showing an older run's outcome.
    btc.refresh_from_db()
    assert btc.last_train_outcome.startswith(
        "full retrain queued: Retrain now, by root; waiting for a worker"
    )
    listing = admin_client.get(ASSETS).content.decode()
    assert "<strong>queued</strong> — full retrain queued" in listing


def test_retrain_now_says_so_when_the_broker_is_down(admin_client, btc, broker_down):
    response = admin_client.post(ASSETS, {"action": "retrain_now", "_selected_action": [btc.pk]}, follow=True)
    assert response.status_code == 200
    assert "Could not enqueue the retrain" in response.content.decode()
    btc.refresh_from_db()
    assert btc.last_train_outcome == "full retrain not queued (Retrain now): the task queue was unreachable"


ACTIONS = ("sync_now", "retrain_now", "activate", "deactivate")


def test_view_only_staff_are_not_offered_the_asset_actions(client, btc):
    page = _staff_with(client, "view_asset").get(ASSETS)

    assert page.status_code == 200 and "BTCUSDT" in page.content.decode()
    assert page.context["action_form"] is None  # no action at all: no select, no checkboxes
    for action in ACTIONS:
        assert f'value="{action}"' not in page.content.decode()


@pytest.mark.parametrize("action", ["deactivate", "sync_now"])
def test_view_only_staff_cannot_run_an_asset_action_by_posting_it(client, btc, replay, eager, action):
    viewer = _staff_with(client, "view_asset")

    response = viewer.post(ASSETS, {"action": action, "_selected_action": [btc.pk]}, follow=True)

    assert "enqueued" not in response.content.decode() and "deactivated" not in response.content.decode()
    btc.refresh_from_db()
    assert btc.is_active and btc.last_synced_at is None
    assert not Candle.objects.filter(asset=btc).exists()  # the eager sync did not run


def test_view_only_staff_cannot_queue_a_retrain(client, btc):
    viewer = _staff_with(client, "view_asset")

    viewer.post(ASSETS, {"action": "retrain_now", "_selected_action": [btc.pk]})

    queued = queued_message_take(
        lambda m: m.headers.get("task") == "forecasting.tasks.retrain_asset", timeout=2
    )
    assert queued is None


def test_staff_with_change_asset_run_the_actions(client, btc):
    editor = _staff_with(client, "view_asset", "change_asset")

    page = editor.get(ASSETS).content.decode()
    editor.post(ASSETS, {"action": "deactivate", "_selected_action": [btc.pk]})

    assert all(f'value="{action}"' in page for action in ACTIONS)
    btc.refresh_from_db()
    assert not btc.is_active


def test_deleting_a_confirmed_outage_in_the_admin_makes_the_next_sync_ask_again(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:1200])
    outage = ConfirmedOutage.objects.create(
        asset=btc,
        source="binance",
        first_hour=datetime(2021, 4, 20, 2, tzinfo=UTC),
        last_hour=datetime(2021, 4, 20, 3, tzinfo=UTC),
    )
    listed = admin_client.get("/admin/markets/confirmedoutage/").content.decode()
    assert "2021" in listed and "BTCUSDT" in listed

    response = admin_client.post(f"/admin/markets/confirmedoutage/{outage.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert (
        datetime(2021, 4, 20, 2, tzinfo=UTC),
        datetime(2021, 4, 20, 3, tzinfo=UTC),
    ) in asset_unconfirmed_gaps(asset=btc, source="binance")


def test_the_asset_form_says_what_horizon_and_hyperparameters_accept(admin_client, btc, settings):
    settings.FORECAST_HORIZON = 12
    response = admin_client.get(f"{ASSETS}{btc.pk}/change/")
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "Empty: the default, 12 hours" in form.fields["horizon"].help_text
    hint = form.fields["hyperparameters"].help_text
    # Every key the recipe accepts is listed with its default; horizon has its own field.
    for key in ("window", "learning_rate", "max_epochs", "warm_windows", "shrink_z"):
        assert f"{key} (" in hint
    assert "learning_rate (0.001)" in hint
    assert "horizon (" not in hint
    assert b"max_epochs (8)" in response.content


def test_an_unknown_hyperparameter_is_refused_in_the_form_naming_the_known_ones(admin_client, btc):
    response = admin_client.post(
        f"{ASSETS}{btc.pk}/change/",
        {"is_active": "on", "horizon": "", "hyperparameters": '{"epochs": 3}'},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "unknown hyperparameter &#x27;epochs&#x27;" in response.content.decode()
    btc.refresh_from_db()
    assert btc.hyperparameters == {}


@pytest.mark.parametrize("scored", [5, 60])
def test_an_asset_with_model_versions_is_refused_deletion_without_a_query_per_forecast(
    admin_client, btc, scored
):
    from forecasting.models import Forecast
    from tests.web import factories

    factories.market_create(asset=btc, scored=scored)
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(f"{ASSETS}{btc.pk}/delete/")
    # Refused outright (no Delete button leads there): its versions and forecasts are kept.
    assert page.status_code == 403
    assert len(queries) < 20
    assert admin_client.post(f"{ASSETS}{btc.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Asset.objects.filter(pk=btc.pk).exists() and Forecast.objects.filter(asset=btc).count() > scored


def test_an_asset_with_only_candles_can_still_be_deleted(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:24])
    assert b"Are you sure" in admin_client.get(f"{ASSETS}{btc.pk}/delete/").content
    response = admin_client.post(f"{ASSETS}{btc.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Asset.objects.filter(pk=btc.pk).exists() and not Candle.objects.exists()


def _outage(asset: Asset, day: int) -> ConfirmedOutage:
    return ConfirmedOutage.objects.create(
        asset=asset,
        source="replay",
        first_hour=datetime(2021, 4, day, 2, tzinfo=UTC),
        last_hour=datetime(2021, 4, day, 3, tzinfo=UTC),
    )


def test_candles_and_outages_are_named_by_symbol_in_the_admin(admin_client, btc, bundled):
    candles_upsert(asset=btc, rows=bundled[:2])
    candle, outage = Candle.objects.first(), _outage(btc, 20)

    candle_page = admin_client.get(f"/admin/markets/candle/{candle.pk}/change/").content.decode()
    outage_page = admin_client.get(f"/admin/markets/confirmedoutage/{outage.pk}/change/").content.decode()

    assert str(candle).startswith("BTCUSDT 2021-03-06 ") and f"<h2>{escape(str(candle))}</h2>" in candle_page
    assert str(outage) == "BTCUSDT replay 2021-04-20 02:00 to 2021-04-20 03:00"
    assert f"<h2>{str(outage)}</h2>" in outage_page


@pytest.mark.parametrize(
    "path", ["/admin/markets/candle/", "/admin/markets/confirmedoutage/", f"{ASSETS}{{pk}}/delete/"]
)
def test_listing_candles_and_outages_by_symbol_costs_no_query_per_row(admin_client, btc, bundled, path):
    path = path.format(pk=btc.pk)
    candles_upsert(asset=btc, rows=bundled[:2])
    _outage(btc, 1)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(path).status_code == 200
    candles_upsert(asset=btc, rows=bundled[:40])
    for day in range(2, 20):
        _outage(btc, day)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(path).status_code == 200
    assert len(many) == len(few)


def test_the_horizon_input_offers_only_the_hours_the_form_accepts(admin_client, btc):
    page = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()
    tag = re.search(r'<input [^>]*name="horizon"[^>]*>', page).group(0)
    assert 'min="1"' in tag and 'max="168"' in tag


def test_hyperparameter_errors_speak_json_and_list_only_keys_allowed_there(admin_client, btc):
    change = f"{ASSETS}{btc.pk}/change/"
    boolean = admin_client.post(change, {"is_active": "on", "hyperparameters": '{"max_epochs": true}'})
    unknown = admin_client.post(change, {"is_active": "on", "hyperparameters": '{"bogus": 1}'})

    assert "max_epochs must be a number, got true" in boolean.content.decode()
    listed = re.search(
        r"unknown hyperparameter &#x27;bogus&#x27; \(known: ([^)]*)\)", unknown.content.decode()
    )
    assert listed and "max_epochs" in listed.group(1).split(", ")
    assert "horizon" not in listed.group(1)


def test_an_asset_with_a_record_offers_no_delete_and_a_typo_still_can_be_deleted(admin_client, btc):
    from tests.web.factories import version_create

    typo = Asset.objects.create(symbol="BTCUSDC", base="BTC", quote="USDC")
    version_create(asset=btc, version=1, status="active")

    listing = admin_client.get(ASSETS).content.decode()
    kept = admin_client.get(f"{ASSETS}{btc.pk}/change/").content.decode()
    typo_page = admin_client.get(f"{ASSETS}{typo.pk}/change/").content.decode()

    assert 'value="delete_selected"' not in listing  # the bulk action stopped on a refusal page
    assert f"{ASSETS}{btc.pk}/delete/" not in kept
    assert admin_client.get(f"{ASSETS}{btc.pk}/delete/").status_code == 403
    assert f"{ASSETS}{typo.pk}/delete/" in typo_page
    admin_client.post(f"{ASSETS}{typo.pk}/delete/", {"post": "yes"})
    assert not Asset.objects.filter(symbol="BTCUSDC").exists()
