"""The monthly API quota as a DRF throttle, applied to the counted endpoints, and its headers."""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpResponseBase
from django.utils import timezone
from rest_framework.exceptions import ErrorDetail, Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.authentication import counts_quota
from accounts.services import QuotaDecision, api_quota_consume
from makeusrich.formats import iso_z

# On every counted answer (200, 400, 404, 503 and the 429): the state after this call.
LIMIT_HEADER = "X-Quota-Limit"
REMAINING_HEADER = "X-Quota-Remaining"
RESET_HEADER = "X-Quota-Reset"


class QuotaExceeded(Throttled):
    """429 with Retry-After (seconds to the next month) and the reset time in the body."""

    default_code = "quota_exceeded"

    def __init__(self, decision: QuotaDecision) -> None:
        wait = max(1, math.ceil((decision.period_end - timezone.now()).total_seconds()))
        super().__init__(wait=wait)
        reset_at = iso_z(decision.period_end)
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
        # Taken with the token lookup (HashedTokenAuthentication), or settled here.
        decision = getattr(request.auth, "quota", None) or api_quota_consume(user=user)
        view.quota_decision = decision  # for the headers, the 429's too
        if not decision.allowed:
            raise QuotaExceeded(decision)
        return True


class CountedApiView(APIView):
    """An endpoint whose every call takes one unit of the caller's monthly quota (DESIGN.md)."""

    counts_quota = True  # HashedTokenAuthentication takes the unit with the token lookup
    throttle_classes = [MonthlyQuotaThrottle]
    # Set by MonthlyQuotaThrottle once the call is counted or refused for the quota; a 401, an
    # OPTIONS or a 405 has none, and no quota headers.
    quota_decision: QuotaDecision | None = None

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)
        decision = self.quota_decision
        if decision is not None:
            response.headers[LIMIT_HEADER] = str(decision.limit)
            response.headers[REMAINING_HEADER] = str(decision.remaining)
            response.headers[RESET_HEADER] = iso_z(decision.period_end)
        return response
