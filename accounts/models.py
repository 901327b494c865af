from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A named API token. Only the SHA-256 of the key is stored; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)  # first characters of the key, for display
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiQuota(models.Model):
    """Per-user override of settings.API_MONTHLY_QUOTA."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_quota")
    monthly_limit = models.PositiveIntegerField()

    class Meta:
        verbose_name = "API quota"

    def __str__(self) -> str:
        return f"{self.user} {self.monthly_limit}/month"


class ApiUsage(models.Model):
    """Counted API calls of one user in one calendar month (UTC)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_usage")
    period_start = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "API usage"
        verbose_name_plural = "API usage"
        constraints = [
            models.UniqueConstraint(fields=["user", "period_start"], name="apiusage_unique_user_period"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.period_start:%Y-%m}: {self.used}"
