from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "mostro_site.ops"
    label = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mostro_site.ops import job_hooks, persist

        job_hooks.connect()
        persist.start_for_process()
