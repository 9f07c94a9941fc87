"""The admin app with the node's own front page (mostro_site.admin_site), listed in INSTALLED_APPS
by this dotted path instead of "django.contrib.admin"."""

from django.contrib.admin.apps import AdminConfig


class MostroAdminConfig(AdminConfig):
    default_site = "mostro_site.admin_site.MostroAdminSite"
