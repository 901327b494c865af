"""Reads of API tokens, quotas and usage (pages, admin and the API use these)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from accounts.hotpath import token_lookup
from accounts.models import ApiQuota, ApiToken, ApiUsage

TOKEN_KEYWORD = "Token"  # noqa: S105 (the Authorization scheme, not a secret)


@dataclass(frozen=True)
class UsageReport:
    """This month's counted API calls of one user; the period is [start, end) in UTC."""

    used: int
    limit: int
    period_start: datetime
    period_end: datetime

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def api_token_hash(key: str) -> str:
    """SHA-256 hex of a token key: the only form in which keys are stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens, newest first (name, prefix, created_at, last_used_at)."""
    return ApiToken.objects.filter(user=user).only(
        "id", "user_id", "name", "prefix", "created_at", "last_used_at"
    )


def api_token_find(*, key: str) -> ApiToken | None:
    """The token whose key is `key`, with its user and quota override (one query), or None."""
    return token_lookup(key_hash=api_token_hash(key))


def month_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing `now`, as [start, end)."""
    now = (now or timezone.now()).astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def api_quota_limit(*, user: AbstractBaseUser) -> int:
    """The user's monthly limit: the admin's per-user value, else settings.API_MONTHLY_QUOTA."""
    # Reads the cached reverse one-to-one when the user came from api_token_find (no query).
    try:
        return user.api_quota.monthly_limit  # type: ignore[attr-defined]
    except ApiQuota.DoesNotExist:
        return settings.API_MONTHLY_QUOTA


def api_usage_get(*, user: AbstractBaseUser, now: datetime | None = None) -> UsageReport:
    """Used / limit / period of the user's current month."""
    start, end = month_period(now)
    used = (
        ApiUsage.objects.filter(user=user, period_start=start.date()).values_list("used", flat=True).first()
    )
    return UsageReport(used=used or 0, limit=api_quota_limit(user=user), period_start=start, period_end=end)
