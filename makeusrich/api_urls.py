"""Every route under /api/v1/ (the DESIGN.md HTTP API table)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
