from django.contrib import admin
from django.urls import include, path

from mostro_site.api.root import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("operator/", include("mostro_site.operator.urls")),
]
