from django.contrib import admin
from django.urls import include, path

from mostro_site.api.root import api
from mostro_site.views import favicon_view, landing_view

urlpatterns = [
    path("", landing_view, name="landing"),
    path("favicon.ico", favicon_view, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("operator/", include("mostro_site.operator.urls")),
    path("console/", include("disputes.console_views")),
    path("", include("mostro_site.ops.urls")),
]
