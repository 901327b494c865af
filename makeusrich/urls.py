from django.contrib import admin
from django.urls import include, path

from accounts.views import AdminLoginView
from makeusrich import health

admin.site.site_header = "Make Us Rich admin"
admin.site.site_title = "Make Us Rich admin"
admin.site.index_title = "Assets, models and accounts"

handler400 = "makeusrich.api_errors.bad_request"
handler404 = "makeusrich.api_errors.page_not_found"
handler500 = "makeusrich.api_errors.server_error"

urlpatterns = [
    # health.ProbeMiddleware answers these two before the Host check; the routes keep reverse() working.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/login/", AdminLoginView.as_view(), name="admin-login"),  # before the admin's own
    path("admin/", admin.site.urls),
    path("api/v1/", include("makeusrich.api_urls")),
    path("", include("accounts.urls")),
    path("", include("forecasting.urls")),
]
