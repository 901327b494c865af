"""Every periodic schedule of the product, in one place.

They live in the database (django-celery-beat) so admins can change them in
the admin; `schedules_ensure` creates the missing ones and never overwrites
an admin's edits. A data migration runs it, so every database has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    minute: str
    hour: str = "*"
    args: tuple[Any, ...] = ()
    description: str = ""


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("sync-candles-hourly", "markets.tasks.sync_active_assets", minute="1",
             description="Pull the newly closed candles of every active asset."),
    Schedule("retrain-warm-hourly", "forecasting.tasks.retrain_active_assets", minute="5", args=("warm",),
             description="Fine-tune every active asset's model on its newest training windows; recalibrate."),
    Schedule("retrain-full-daily", "forecasting.tasks.retrain_active_assets", minute="20", hour="3",
             args=("full",), description="Retrain every active asset's model from scratch."),
    Schedule("prune-model-versions-daily", "forecasting.tasks.prune_model_versions", minute="40", hour="4",
             description="Retire old model versions and delete their artifacts."),
    Schedule("prune-forecasts-daily", "forecasting.tasks.prune_forecasts", minute="45", hour="4",
             description="Delete scored forecasts past the retention limit."),
)  # fmt: skip


def schedules_ensure(periodic_task_model: Any, crontab_model: Any) -> int:
    """Create the schedules that are missing; returns how many were created."""
    created = 0
    for schedule in SCHEDULES:
        if periodic_task_model.objects.filter(name=schedule.name).exists():
            continue
        crontab, _ = crontab_model.objects.get_or_create(
            minute=schedule.minute,
            hour=schedule.hour,
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        periodic_task_model.objects.create(
            name=schedule.name,
            task=schedule.task,
            crontab=crontab,
            args=json.dumps(list(schedule.args)),
            description=schedule.description,
        )
        created += 1
    return created
