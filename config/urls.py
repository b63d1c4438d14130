"""Root URL configuration."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("negotiation.urls")),
    # Daphne serves no static files itself. This view serves them only while DEBUG is on (it
    # answers 404 otherwise); in production a proxy serves STATIC_ROOT after collectstatic.
    re_path(rf"^{settings.STATIC_URL.strip('/')}/(?P<path>.+)$", serve_static),
]
