from django.apps import AppConfig


class NostrbridgeConfig(AppConfig):
    name = "nostrbridge"
    verbose_name = "Relay bridge"
    default_auto_field = "django.db.models.BigAutoField"
