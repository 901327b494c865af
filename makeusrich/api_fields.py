"""Query parameter fields that accept only what the API contract says, nothing DRF lets by.

DRF's IntegerField reads "1_0" as 10, "５" (full-width) or "٣" (Arabic-Indic) as digits and
"5.0" as 5; its DateTimeField hands any length to Django's parser, which reads a run of
3,000 digits as a date. Here an integer is ASCII digits with an optional minus sign, and a
time is at most 40 characters of ISO 8601.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers
from rest_framework.settings import api_settings
from rest_framework.utils import humanize_datetime

_INTEGER = re.compile(r"-?[0-9]+")
# An offset whose "+" was sent unencoded: the query string decodes it as a space.
_PLUS_AS_SPACE = re.compile(r"T[0-9:.]+ [0-9]{2}(:?[0-9]{2})?$")
MAX_TIME_LENGTH = 40  # "2022-03-01T00:00:00.000000+00:00" is 32


class QueryIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not _INTEGER.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_TIME_LENGTH:
            formats = getattr(self, "input_formats", None) or api_settings.DATETIME_INPUT_FORMATS
            self.fail("invalid", format=humanize_datetime.datetime_formats(formats))
        if isinstance(value, str) and _PLUS_AS_SPACE.search(value):
            raise serializers.ValidationError(
                f"Datetime has wrong format: {value!r} has a space where its offset's '+' was; "
                "in a URL write '+' as %2B (2022-01-29T00:00:00%2B02:00), or use Z for UTC."
            )
        return super().to_internal_value(value)


class QuerySerializer(serializers.Serializer):
    """A view's query parameters: each at most once (QueryDict would quietly read a repeated one's last value)."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):
            repeated = {name: len(data.getlist(name)) for name in self.fields}
            errors = {name: [f"given {n} times; give it once."] for name, n in repeated.items() if n > 1}
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
