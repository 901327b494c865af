"""Words and numbers of the pages: skill in plain words, prices, changes, dates, retrain times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import formats
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from forecasting.overview import retrain_schedule, skill_words
from forecasting.templatetags import market_format as fmt


@pytest.mark.parametrize(
    ("skill", "words"),
    [
        (0.12, "12 % lower error than assuming no change"),
        (0.004, "about as accurate as assuming no change"),
        (-0.004, "about as accurate as assuming no change"),
        (-0.2, "worse than assuming no change (20 % higher error)"),
        (None, "not measured yet"),
    ],
)
def test_skill_reads_as_plain_words(skill, words):
    assert skill_words(skill) == words


def test_a_null_skill_says_when_no_change_was_exact_and_the_model_was_not():
    assert skill_words(None, rmse=3.0, persistence_rmse=0.0).startswith(
        "worse than assuming no change, which"
    )
    assert skill_words(None, rmse=None, persistence_rmse=None) == "not measured yet"
    assert skill_words(0.0, rmse=0.0, persistence_rmse=0.0) == "about as accurate as assuming no change"
    metrics = {"skill_rmse": [None, 0.12], "rmse": [3.0, 88.0], "persistence_rmse": [0.0, 100.0]}
    assert fmt.skill_short_at(metrics, 0) == "worse (no change was exact)"
    assert fmt.skill_short_at(metrics, -1) == "12 % better"
    assert fmt.skill_short_at({}, 0) == "–"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("43210.5"), "43,210.50"),
        (12.345678, "12.3457"),
        (0.0612345, "0.061234"),
        (0.009, "0.009000"),
        (0.0000123456, "0.00001235"),
        (None, "–"),
    ],
)
def test_prices_keep_enough_decimals_for_their_size(value, text):
    assert fmt.price(value) == text


def test_changes_carry_their_sign_and_direction():
    assert fmt.signed_pct(1.254) == "+1.25 %"
    assert fmt.signed_pct(-0.4) == "−0.40 %"
    assert (fmt.direction(2), fmt.direction(-2), fmt.direction(0)) == ("up", "down", "")


def test_a_change_too_small_for_two_decimals_keeps_one_significant_digit():
    # A stablecoin's hourly move (1e-4 on 1.0000 is 0.01 %, a forecast a fraction of that)
    # read "+0.00 %" beside an "up" arrow.
    assert fmt.signed_pct(0.0034) == "+0.003 %"
    assert fmt.signed_pct(-0.00004) == "−0.00004 %"
    assert fmt.signed_pct(0.0) == "+0.00 %" and fmt.signed_pct(-3e-12) == "−0.00 %"
    assert fmt.signed_pct(0.005) == "+0.01 %"


def test_amounts_durations_and_shares():
    assert fmt.amount(96.0833) == "96.08"
    assert fmt.amount(0.000512345) == "0.000512"
    assert fmt.duration(41.2) == "41 s"
    assert fmt.duration(754) == "12 min 34 s"
    assert fmt.duration(7300) == "2 h 1 min"
    assert fmt.pct(0.81) == "81 %"
    assert fmt.at([1, 2, 3], -1) == 3 and fmt.at([], 0) is None and fmt.at(None, 0) is None
    assert fmt.skill_short(0.12) == "12 % better" and fmt.skill_short(-0.05) == "5 % worse"


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.234e-7, "0.000000123"), (5e-5, "0.00005"), (-2.5e-8, "-0.000000025"), (0.0123, "0.0123")],
)
def test_amounts_of_a_coin_priced_in_hundred_thousandths_are_written_out(value, text):
    # A SHIB-sized coin's errors (1e-7 USDT) read "1.23e-07" with "%g".
    assert fmt.amount(value) == text


@pytest.mark.django_db
def test_the_next_retrain_is_read_from_the_enabled_crontabs():
    PeriodicTask.objects.all().delete()
    now = datetime.now(UTC)
    hourly = CrontabSchedule.objects.create(minute="5", hour="*", timezone="UTC")
    daily = CrontabSchedule.objects.create(minute="20", hour="3", timezone="UTC")
    PeriodicTask.objects.create(name="retrain-warm-hourly", task="t", crontab=hourly)
    PeriodicTask.objects.create(name="retrain-full-daily", task="t", crontab=daily)
    PeriodicTask.objects.create(name="sync-candles-hourly", task="t", crontab=hourly)
    runs = retrain_schedule(now=now)
    assert [run.name for run in runs][0] == "retrain-warm-hourly"
    warm, full = sorted(runs, key=lambda run: run.name, reverse=True)
    assert warm.next_run.minute == 5 and now < warm.next_run <= now + timedelta(hours=1)
    assert (full.next_run.hour, full.next_run.minute) == (3, 20) and now < full.next_run <= now + timedelta(
        days=1
    )


@pytest.mark.django_db
def test_no_retrain_is_listed_when_the_schedules_are_missing_or_disabled():
    PeriodicTask.objects.filter(name="retrain-full-daily").delete()
    PeriodicTask.objects.filter(name="retrain-warm-hourly").update(enabled=False)
    assert retrain_schedule() == []


def test_when_always_writes_the_year_and_says_utc():
    this_year = datetime.now(UTC).year
    assert fmt.when(datetime(this_year, 3, 6, 17, tzinfo=UTC)) == f"6 Mar {this_year} 17:00 UTC"
    assert fmt.when(datetime(2022, 11, 24, 14, 5, tzinfo=UTC)) == "24 Nov 2022 14:05 UTC"
    assert fmt.when(None) == ""


def test_djangos_own_date_formats_are_the_sites():
    # What the admin and the `date` filter use: the locale's formats win over settings in Django 5.
    moment = datetime(2022, 11, 24, 14, 5, tzinfo=UTC)
    assert formats.localize(moment) == fmt.when(moment) == "24 Nov 2022 14:05 UTC"
    assert formats.date_format(moment.date()) == "24 Nov 2022"
    assert formats.date_format(moment, "SHORT_DATETIME_FORMAT") == "24 Nov 2022 14:05"
    assert formats.time_format(moment.time()) == "14:05"
