"""How the site and the admin write dates: "6 Mar 2022 17:00 UTC", always with the year.

Django 5 always localizes, so a language's formats win over settings such as
DATETIME_FORMAT; settings.FORMAT_MODULE_PATH points here so that en/formats.py
is read before Django's own English formats, by the `date` filter and by the
admin alike. Python code writes a moment with `datetime_text`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import dateformat, timezone

from makeusrich.formats.en.formats import DATETIME_FORMAT


def iso_z(value: datetime | None) -> str | None:
    """A moment as the JSON of the API and the commands writes it: "2022-03-06T17:00:00Z" (None stays None)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def datetime_text(value: datetime) -> str:
    """An aware datetime as every page writes it, in the site's time zone (UTC): "6 Mar 2022 17:00 UTC".

    Reads the format itself rather than through the active language, so that it
    says the same in a Celery task or a command, where no language may be active.
    """
    return dateformat.format(timezone.localtime(value), DATETIME_FORMAT)
