from django.apps import AppConfig


class LightningConfig(AppConfig):
    name = "lightning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.test.signals import setting_changed

        from lightning import reset_lightning_client
        from lightning.lnd_errors import reset_transaction_guard

        setting_changed.connect(reset_lightning_client, dispatch_uid="lightning.reset_client")
        setting_changed.connect(reset_transaction_guard, dispatch_uid="lightning.reset_transaction_guard")
