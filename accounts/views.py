"""Pages: sign up, log in (throttled), log out (saying so), password change, and the API tokens page."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.login_throttle import client_address, login_attempt_start, login_attempt_succeeded
from accounts.models import ApiToken
from accounts.selectors import api_token_list, api_usage_get
from accounts.services import api_token_create, api_token_revoke

# How long a new key waits, in the browser, for the page the creation redirects to.
NEW_KEY_SECONDS = 300
_NEW_KEY_COOKIE = "mur_new_token_key"


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        required=False,  # blank: the API's default name, "api <date time>"
        help_text="Say where the token will be used, e.g. “laptop script”. Left empty, it is named "
        "“api” and the date and time (UTC).",
    )


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
        return redirect("dashboard")
    return render(request, "registration/signup.html", {"form": form})


def _new_key_salt(request: HttpRequest) -> str:
    return f"accounts.new-token-key:{request.user.pk}"  # another user of the browser cannot read it


def _new_key_hold(request: HttpRequest, response: HttpResponse, key: str) -> None:
    """Hand the key to the page the redirect leads to in a signed cookie of this browser.

    The server keeps no copy: the database holds only the key's hash, and the
    session and the cache are stored (database, files, Redis) too.
    """
    response.set_signed_cookie(
        _NEW_KEY_COOKIE,
        key,
        salt=_new_key_salt(request),
        max_age=NEW_KEY_SECONDS,
        path=reverse("tokens"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def _new_key_take(request: HttpRequest) -> str | None:
    return request.get_signed_cookie(
        _NEW_KEY_COOKIE, default=None, salt=_new_key_salt(request), max_age=NEW_KEY_SECONDS
    )


@never_cache  # the page can carry a new key: no browser or proxy may store it
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens and create one.

    Creating redirects (Post/Redirect/Get), and the page after the redirect shows the new key
    once: a refresh neither shows it again nor creates a second token.
    """
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, key = api_token_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as error:
            for message in error.messages:
                form.add_error("name", message)
        else:
            messages.success(
                request, f"Token “{token.name}” created. Copy its key now: it is shown only once."
            )
            response = redirect("tokens")
            _new_key_hold(request, response, key)
            return response
    usage = api_usage_get(user=request.user)
    context = {
        "form": form,
        "new_key": _new_key_take(request) if request.method == "GET" else None,
        "tokens": api_token_list(user=request.user),
        "usage": usage,
        "usage_share": usage.used / usage.limit if usage.limit else 1.0,
        "api_url": request.build_absolute_uri(reverse("api-assets")),
    }
    response = render(request, "accounts/tokens.html", context)
    if _NEW_KEY_COOKIE in request.COOKIES:  # shown once: a refresh finds it gone
        response.delete_cookie(_NEW_KEY_COOKIE, path=reverse("tokens"), samesite="Strict")
    return response


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if request.method == "GET":  # a typed or bookmarked address: revoke nothing, show the list
        return redirect("tokens")
    if api_token_revoke(user=request.user, token_id=token_id):
        messages.success(request, "Token revoked: it no longer opens the API.")
    else:
        messages.error(request, "That token does not exist (it may already be revoked).")
    return redirect("tokens")


class ThrottledLoginView(auth_views.LoginView):
    """Django's login view, refusing a client or username after too many failed attempts."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        who = {"username": request.POST.get("username", ""), "client": client_address(request)}
        wait = login_attempt_start(**who)
        if wait is not None:
            form = self.get_form()
            form.errors.clear()
            minutes = math.ceil(wait / 60)
            form.add_error(
                None,
                f"Too many failed log-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:  # a failure was counted when the attempt started
            login_attempt_succeeded(**who)
        return response


class AdminLoginView(ThrottledLoginView):
    """The admin's login page with the same failure limit: its accounts are the most privileged."""

    authentication_form = AdminAuthenticationForm
    template_name = "admin/login.html"
    redirect_authenticated_user = False  # the admin explains itself to a logged-in non-staff user

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **admin.site.each_context(self.request),
            "title": "Log in",
            "subtitle": None,
            "site_name": admin.site.site_header,
            "app_path": self.request.get_full_path(),
            # admin/login.html names a logged-in non-staff user: "You are authenticated as …"
            "username": self.request.user.get_username(),
            **super().get_context_data(**kwargs),
        }

    def get_default_redirect_url(self) -> str:
        return reverse("admin:index")


class LogoutView(auth_views.LogoutView):
    """Django's log out (on POST), then a message on the login page it redirects to.

    A GET (the address typed or bookmarked) logs nobody out: it shows a page with the button.
    """

    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect("login")
        return render(request, "registration/logout.html")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have been logged out.")
        return response


# Not Django's default names (registration/password_change_form.html, …_done.html): the admin's
# own password change renders those, and a project template of that name would replace its page.
class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change (login required, session kept) in the site layout."""

    template_name = "registration/site_password_change_form.html"


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "registration/site_password_change_done.html"
