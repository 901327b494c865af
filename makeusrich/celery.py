"""The Celery application. Periodic schedules live in the database
(django-celery-beat); their defaults are created by `makeusrich.schedules`."""

import os
import uuid
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")

app = Celery("makeusrich")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A caller (a web request above all) waits for the broker about a second, then hears it is unreachable.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def task_send(name: str, *args: Any, **kwargs: Any) -> str:
    """Queue task `name` by name for a caller that never reads its result; the task's id.

    By name, because web processes never import training code. Not reading
    results, the caller does not subscribe to them: with Redis down, subscribing
    hung for ~19 s and raised an error that is not the broker's. Raises whatever
    the broker raises when it is unreachable.
    """
    task_id = str(uuid.uuid4())
    options = {"task_id": task_id, "ignore_result": True, "retry_policy": SEND_RETRY_POLICY}
    registered = app.tasks.get(name)
    if registered is not None:  # through the task when this process knows it, so eager mode applies
        registered.apply_async(args=list(args), kwargs=kwargs, **options)
    else:
        app.send_task(name, args=list(args), kwargs=kwargs, **options)
    return task_id
