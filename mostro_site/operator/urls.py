"""Operator pages (settings form, dashboard), mounted at /operator/."""

from django.urls import path

from mostro_site.operator import views

app_name = "operator"

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("settings/", views.settings_view, name="settings"),
    path("maintenance/", views.maintenance_view, name="maintenance"),
]
