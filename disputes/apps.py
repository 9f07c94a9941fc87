from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DisputesConfig(AppConfig):
    name = "disputes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from disputes import checks  # noqa: F401 - registers the console's system checks
        from disputes.groups import ensure_groups

        post_migrate.connect(ensure_groups, dispatch_uid="disputes.ensure_groups")
