"""API: tokens from a username and password (POST auth/token/), quota usage (GET usage/)."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.login_throttle import (
    LoginRateThrottle,
    client_address,
    login_attempt_start,
    login_attempt_succeeded,
)
from accounts.selectors import api_usage_get
from accounts.services import api_token_create
from makeusrich.api_schema import RETRY_AFTER, UNAUTHORIZED, ValidationErrorSerializer, error


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    # As long as any password the site's forms take (Django sets no maximum); 4096 bounds the work.
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,  # as the tokens page: empty or left out, the token gets the default name
        help_text='What the token is for; empty or left out: "api <date time>" (UTC).',
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key; shown this once, only its hash is stored.")


class UsageSerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="Counted calls this month.")
    limit = serializers.IntegerField(help_text="The user's monthly limit.")
    period_start = serializers.DateTimeField(help_text="Start of this month (UTC).")
    period_end = serializers.DateTimeField(help_text="Start of next month (UTC), when usage resets.")


class TokenCreateApi(APIView):
    # Credentials are the point here: a stray token header must not get in the way.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_token_create",
        summary="Create an API token",
        description="Exchange a username and password for a new named token. The key is in this "
        "response only. Against password guessing, requests are throttled per client address, and "
        "after LOGIN_FAILURE_LIMIT failed attempts (default 10) for one username, or "
        "LOGIN_CLIENT_FAILURE_LIMIT (default 100) from one address, within LOGIN_FAILURE_WINDOW_SECONDS "
        "(default 900), further attempts get 429 until the window passes.",
        request=TokenRequestSerializer,
        auth=[],
        parameters=[RETRY_AFTER],
        responses={
            201: TokenSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Bad credentials or missing field"),
            429: error("Too many attempts", "Request was throttled. Expected available in 42 seconds."),
        },
    )
    def post(self, request: Request) -> Response:
        credentials = TokenRequestSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        data = credentials.validated_data
        who = {"username": data["username"], "client": client_address(request)}
        wait = login_attempt_start(**who)
        if wait is not None:
            raise Throttled(
                wait=wait,
                detail="Too many failed attempts from this address or for this username; try again later.",
            )
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:  # already counted as failed by login_attempt_start
            raise ValidationError("Unable to log in with the provided credentials.")
        login_attempt_succeeded(**who)
        _, key = api_token_create(user=user, name=data.get("name", ""))
        # The key is a credential: no cache (browser, proxy) may keep this response.
        return Response({"token": key}, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class UsageApi(APIView):
    @extend_schema(
        operation_id="usage_retrieve",
        summary="This month's quota usage",
        description="Counted calls, limit and period of the current month. Not counted itself.",
        responses={200: UsageSerializer, **UNAUTHORIZED},
    )
    def get(self, request: Request) -> Response:
        return Response(UsageSerializer(api_usage_get(user=request.user)).data)
