"""Web routes of forecasting: the dashboard and the asset pages (included at the site root)."""

from django.urls import path

from forecasting import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("assets/<str:symbol>/", views.asset_detail, name="asset_detail"),
]
