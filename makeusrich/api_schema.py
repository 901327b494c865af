"""OpenAPI pieces shared by the API modules: the token scheme and the error bodies.

Importing this module registers the authentication extension with
drf-spectacular, so every API module that documents itself imports it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.utils import formatting


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Authorization: Token <key>`. Get a key from `POST /api/v1/auth/token/` or the "
                "account's token page; it is shown once. Keys in query strings are never accepted."
            ),
        }


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a human.")


class ValidationErrorSerializer(serializers.Serializer):
    """400: `detail` names the fields; each bad field also gets its own list of messages."""

    detail = serializers.CharField(help_text="The bad fields and why, e.g. 'limit: Ensure ...'.")

    class Meta:
        # Field errors sit beside `detail` under the field's name.
        ref_name = "ValidationError"


class ValidationErrorScheme(OpenApiSerializerExtension):
    """The 400 body's field errors: any other key is a field's list of messages."""

    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = {
            "type": "array",
            "items": {"type": "string"},
            "description": "A bad field's messages, under the field's name (e.g. `limit`).",
        }
        return schema


class QuotaErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    limit = serializers.IntegerField(help_text="The user's monthly limit.")
    reset_at = serializers.DateTimeField(help_text="When the quota resets (start of next month, UTC).")


RETRY_AFTER = OpenApiParameter(
    name="Retry-After",
    location=OpenApiParameter.HEADER,
    type=int,
    response=[429],
    description="Seconds until the quota resets (or the throttle opens again).",
)

# The answers of a counted call that took its unit or was refused for the quota (not the 401).
_COUNTED_CODES = [200, 400, 404, 429, 503]


def _counted_header(name: str, kind: object, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name=name,
        location=OpenApiParameter.HEADER,
        type=kind,
        response=_COUNTED_CODES,
        description=description,
    )


QUOTA_HEADERS = [
    RETRY_AFTER,
    _counted_header("X-Quota-Limit", int, "The user's monthly limit of counted calls."),
    _counted_header("X-Quota-Remaining", int, "Counted calls left this month after this one (0 on a 429)."),
    _counted_header(
        "X-Quota-Reset",
        OpenApiTypes.DATETIME,
        "When the quota resets: the start of next month, UTC (as `usage/`'s `period_end`).",
    ),
]


def error(description: str, example: str, serializer: Any = ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(
        response=serializer,
        description=description,
        examples=[OpenApiExample(description, value={"detail": example}, response_only=True)],
    )


UNAUTHORIZED = {
    401: error(
        "Missing, unknown or revoked token (a token in the query string is never accepted)",
        "Authentication credentials were not provided.",
    )
}
NOT_FOUND = {404: error("Unknown asset", "Unknown asset 'FOOBAR'; followed assets: BTCUSDT.")}
BAD_REQUEST = {
    400: error(
        "Invalid query parameter",
        "limit: Ensure this value is less than or equal to 1000.",
        ValidationErrorSerializer,
    )
}
QUOTA = {
    429: OpenApiResponse(
        response=QuotaErrorSerializer,
        description=(
            "Monthly quota used up. The `Retry-After` header gives the seconds to the reset; "
            "`reset_at` the time."
        ),
    )
}


def counted(*, description: str) -> str:
    return (
        f"{description}\n\nCounts one call against the user's monthly quota; the answer's "
        "X-Quota-Limit, X-Quota-Remaining and X-Quota-Reset headers say where it stands."
    )


def view_name(view: Any) -> str:
    """The name OPTIONS answers for a view: DRF's words for its class, without our "Api" suffix."""
    return formatting.camelcase_to_spaces(formatting.remove_trailing_string(type(view).__name__, "Api"))
