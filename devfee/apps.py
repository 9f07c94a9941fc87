from django.apps import AppConfig


class DevfeeConfig(AppConfig):
    name = "devfee"
    default_auto_field = "django.db.models.BigAutoField"
