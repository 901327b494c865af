"""Writes of API tokens, quotas and usage."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from accounts.hotpath import token_lookup_and_take_unit, usage_take_unit
from accounts.models import ApiQuota, ApiToken, ApiUsage
from accounts.selectors import api_quota_limit, api_token_find, api_token_hash, month_period

KEY_PREFIX = "mur_"
PREFIX_LENGTH = 12  # "mur_" + 8 random characters: enough to tell tokens apart on a page
NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length
# last_used_at is informative; writing it on every call would cost one UPDATE per request.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class QuotaDecision:
    """Whether a counted call got its unit, and the month's state after it (the quota headers)."""

    allowed: bool
    limit: int
    remaining: int  # calls left this month after this one; 0 when refused
    period_start: datetime
    period_end: datetime


def api_token_default_name(*, now: datetime | None = None) -> str:
    """The name of a token created without one (API or tokens page): "api 2026-11-25 09:30" (UTC)."""
    return f"api {(now or timezone.now()).astimezone(UTC):%Y-%m-%d %H:%M}"


def api_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """Create a named token for `user`; return it and its key (the only time the key exists).

    A blank `name` gets `api_token_default_name`.
    """
    name = (name or "").strip() or api_token_default_name()
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"A token name has at most {NAME_MAX_LENGTH} characters."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:PREFIX_LENGTH], key_hash=api_token_hash(key)
    )
    return token, key


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> bool:
    """Delete one of the user's tokens; False when it is not theirs or already gone."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return deleted > 0


def api_token_authenticate(*, key: str, count: bool, now: datetime | None = None) -> ApiToken | None:
    """The token whose key is `key` (with its user), or None; for a counted call, take its unit too.

    A counted call is one statement on PostgreSQL: the token, its user and
    the unit together. `token.quota` is the QuotaDecision when the unit was
    taken, else None: when it was not (user inactive, first call of the
    month, limit reached) the caller settles it with `api_quota_consume`,
    which nothing has counted yet.
    """
    if not count:
        token = api_token_find(key=key)
        if token is not None:
            token.quota = None  # type: ignore[attr-defined]
        return token
    start, end = month_period(now)
    token, used = token_lookup_and_take_unit(
        key_hash=api_token_hash(key), period_start=start.date(), default_limit=settings.API_MONTHLY_QUOTA
    )
    if token is None:
        return None
    quota = None
    if used is not None:
        limit = api_quota_limit(user=token.user)  # the override cached on the user: no query
        quota = QuotaDecision(
            allowed=True, limit=limit, remaining=max(limit - used, 0), period_start=start, period_end=end
        )
    token.quota = quota  # type: ignore[attr-defined]
    return token


def api_token_touch(*, token: ApiToken, now: datetime | None = None) -> None:
    """Record that the token was used, at most once per TOUCH_INTERVAL (cheap on the hot path)."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_INTERVAL:
        return
    # Conditional so that concurrent requests write it once, not once each.
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL)
    ).update(last_used_at=now)
    token.last_used_at = now


def api_quota_set(*, user: AbstractBaseUser, monthly_limit: int | None) -> None:
    """Override the user's monthly limit; None returns them to settings.API_MONTHLY_QUOTA."""
    if monthly_limit is None:
        ApiQuota.objects.filter(user=user).delete()
        return
    if monthly_limit < 0:
        raise ValidationError({"monthly_limit": "The monthly limit cannot be negative."})
    ApiQuota.objects.update_or_create(user=user, defaults={"monthly_limit": monthly_limit})


def api_quota_consume(*, user: AbstractBaseUser, now: datetime | None = None) -> QuotaDecision:
    """Take one unit of the user's monthly quota, atomically in the database.

    One conditional UPDATE (`used = used + 1 WHERE used < limit`) decides: the
    database serialises concurrent updates of the row, so exactly `limit`
    calls succeed in a month whatever the concurrency. The month's row is
    created on the first call (get_or_create is race-safe on the unique
    constraint) and the UPDATE retried once.
    """
    start, end = month_period(now)
    limit = api_quota_limit(user=user)
    used = usage_take_unit(user_id=user.pk, period_start=start.date(), limit=limit)
    if used is None:
        ApiUsage.objects.get_or_create(user=user, period_start=start.date())
        used = usage_take_unit(user_id=user.pk, period_start=start.date(), limit=limit)
    return QuotaDecision(
        allowed=used is not None,
        limit=limit,
        remaining=max(limit - used, 0) if used is not None else 0,
        period_start=start,
        period_end=end,
    )
