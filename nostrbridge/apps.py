from django.apps import AppConfig


class NostrbridgeConfig(AppConfig):
    name = "nostrbridge"
    default_auto_field = "django.db.models.BigAutoField"
