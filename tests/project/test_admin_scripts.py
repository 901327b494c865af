"""Admin pages run no inline script: the Content-Security-Policy (script-src 'self') would block it."""

import re

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

# An executable <script> without src (JSON data blocks are not executed, so the CSP allows them).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)


@pytest.fixture
def hourly(db) -> PeriodicTask:
    crontab = CrontabSchedule.objects.create(minute="1", hour="*")
    return PeriodicTask.objects.create(name="sync", task="markets.tasks.sync_active_assets", crontab=crontab)


def test_the_periodic_task_form_explains_the_crontab_from_a_static_file(client, staff, hourly):
    client.force_login(staff)
    for path in (
        "/admin/django_celery_beat/periodictask/add/",
        f"/admin/django_celery_beat/periodictask/{hourly.pk}/change/",
    ):
        html = client.get(path).content.decode()
        assert INLINE_SCRIPT.findall(html) == [], path
        assert "js/periodictask_admin.js" in html
        assert 'id="readable-crontabs"' in html and 'id="crontab-help"' in html
