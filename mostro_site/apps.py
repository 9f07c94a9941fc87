from django.apps import AppConfig


class MostroSiteConfig(AppConfig):
    name = "mostro_site"
    verbose_name = "Mostro node"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mostro_site import checks  # noqa: F401  (registers the system checks)
