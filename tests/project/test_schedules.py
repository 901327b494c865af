import json

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from makeusrich.celery import app
from makeusrich.schedules import SCHEDULES, schedules_ensure

pytestmark = pytest.mark.django_db


def test_migrations_create_every_schedule():
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {s.name for s in SCHEDULES} <= names


def test_the_retrain_schedules_are_hourly_warm_and_daily_full():
    warm = PeriodicTask.objects.get(name="retrain-warm-hourly")
    full = PeriodicTask.objects.get(name="retrain-full-daily")
    assert (warm.crontab.minute, warm.crontab.hour, json.loads(warm.args)) == ("5", "*", ["warm"])
    assert (full.crontab.minute, full.crontab.hour, json.loads(full.args)) == ("20", "3", ["full"])


def test_every_scheduled_task_is_a_registered_celery_task():
    app.loader.import_default_modules()
    for schedule in SCHEDULES:
        assert schedule.task in app.tasks, schedule.task


def test_ensuring_again_keeps_an_admins_changes():
    task = PeriodicTask.objects.get(name="retrain-warm-hourly")
    task.enabled = False
    task.crontab = CrontabSchedule.objects.create(minute="30", hour="*/2")
    task.save()

    assert schedules_ensure(PeriodicTask, CrontabSchedule) == 0

    task.refresh_from_db()
    assert not task.enabled and task.crontab.minute == "30"


def test_a_deleted_schedule_is_made_again():
    PeriodicTask.objects.filter(name="prune-forecasts-daily").delete()
    assert schedules_ensure(PeriodicTask, CrontabSchedule) == 1
    assert PeriodicTask.objects.filter(name="prune-forecasts-daily").exists()
