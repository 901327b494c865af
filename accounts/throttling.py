"""The monthly API quota as a DRF throttle, applied to the counted endpoints."""

from __future__ import annotations

import math
from typing import Any

from django.utils import timezone
from rest_framework.exceptions import ErrorDetail, Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.authentication import counts_quota
from accounts.services import QuotaDecision, api_quota_consume


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


class QuotaExceeded(Throttled):
    """429 with Retry-After (seconds to the next month) and the reset time in the body."""

    default_code = "quota_exceeded"

    def __init__(self, decision: QuotaDecision) -> None:
        wait = max(1, math.ceil((decision.period_end - timezone.now()).total_seconds()))
        super().__init__(wait=wait)
        reset_at = _iso(decision.period_end)
        message = f"Monthly API quota of {decision.limit} calls is used up; it resets at {reset_at}."
        self.detail = {
            "detail": ErrorDetail(message, code=self.default_code),
            "limit": decision.limit,
            "reset_at": reset_at,
        }


class MonthlyQuotaThrottle(BaseThrottle):
    """Each read of a counted endpoint by an authenticated user takes one unit of their monthly quota."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if not counts_quota(request, view):
            return True
        user = request.user
        if not user or not user.is_authenticated:
            return True  # authentication/permissions have answered already
        if getattr(request.auth, "quota_taken", False):
            return True  # taken with the token lookup (HashedTokenAuthentication)
        decision = api_quota_consume(user=user)
        if not decision.allowed:
            raise QuotaExceeded(decision)
        return True


class CountedApiView(APIView):
    """An endpoint whose every call takes one unit of the caller's monthly quota (DESIGN.md)."""

    counts_quota = True  # HashedTokenAuthentication takes the unit with the token lookup
    throttle_classes = [MonthlyQuotaThrottle]
