from django.apps import AppConfig


class MostroSiteConfig(AppConfig):
    name = "mostro_site"
    verbose_name = "Mostro node"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from mostro_site import checks  # noqa: F401  (registers the system checks)
        from mostro_site.staff import ensure_groups

        post_migrate.connect(ensure_groups, dispatch_uid="mostro_site.staff.ensure_groups")
