"""The Celery application. Periodic schedules live in the database
(django-celery-beat); their defaults are created by `makeusrich.schedules`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")

app = Celery("makeusrich")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
