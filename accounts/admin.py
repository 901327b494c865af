"""Admin: users with their API quota override, this month's usage and their tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.models import ApiQuota, ApiToken, ApiUsage
from accounts.selectors import api_usage_get
from makeusrich.formats import datetime_text

User = get_user_model()

# The longest token name the user page shows whole; a longer one is cut, in full in its title.
NAME_SHOWN_CHARS = 40


class ApiQuotaInline(admin.StackedInline):
    model = ApiQuota
    can_delete = True
    max_num = 1
    extra = 0
    verbose_name = "API quota override"
    verbose_name_plural = "API quota override"

    def get_formset(self, request: HttpRequest, obj: object = None, **kwargs: object):  # type: ignore[no-untyped-def]
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["monthly_limit"].help_text = (
            f"Calls per calendar month (UTC). Without an override the user gets "
            f"{settings.API_MONTHLY_QUOTA} (API_MONTHLY_QUOTA); delete the override to return to it."
        )
        return formset


class ApiTokenInline(admin.TabularInline):
    """Tokens are created by their owner (the key is shown once); staff may only revoke them."""

    model = ApiToken
    extra = 0
    fields = ("name_shown", "prefix", "created_at", "last_used_at")
    readonly_fields = fields
    can_delete = True
    verbose_name = "API token (delete = revoke)"
    verbose_name_plural = "API tokens (delete = revoke)"  # else Django appends "s" after the ")"

    @admin.display(description="name")
    def name_shown(self, token: ApiToken) -> str:
        # A name may be 100 characters with no space: the whole of it would widen the page.
        if len(token.name) <= NAME_SHOWN_CHARS:
            return token.name
        return format_html('<span title="{}">{}…</span>', token.name, token.name[: NAME_SHOWN_CHARS - 1])

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AccountAdmin(UserAdmin):
    inlines = [ApiQuotaInline, ApiTokenInline]
    readonly_fields = (*UserAdmin.readonly_fields, "api_usage_this_month")
    fieldsets = (*UserAdmin.fieldsets, ("API", {"fields": ("api_usage_this_month",)}))

    @admin.display(description="API usage this month")
    def api_usage_this_month(self, user: object) -> str:
        if not getattr(user, "pk", None):
            return "-"
        usage = api_usage_get(user=user)
        source = "override" if ApiQuota.objects.filter(user=user).exists() else "default"
        return (
            f"{usage.used} of {usage.limit} calls ({source} limit); resets {datetime_text(usage.period_end)}"
        )


@admin.register(ApiUsage)
class ApiUsageAdmin(admin.ModelAdmin):
    list_display = ("user", "period_start", "used")
    list_filter = ("period_start",)
    search_fields = ("user__username",)
    readonly_fields = ("user", "period_start", "used")

    # Counted by the API, never edited: view-only, so the admin offers "View", not "Change".
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiUsage | None = None) -> bool:
        return False

    # Deleting a month's row would silently give the user their whole quota again: a larger
    # quota is the user's "API quota" override instead.
    def has_delete_permission(self, request: HttpRequest, obj: ApiUsage | None = None) -> bool:
        return False


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AccountAdmin)
