from django.apps import AppConfig


class DevfeeConfig(AppConfig):
    name = "devfee"
    verbose_name = "Development fee"
    default_auto_field = "django.db.models.BigAutoField"
