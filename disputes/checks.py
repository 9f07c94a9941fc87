"""System checks for the solver console's settings (a bad value refuses to start)."""

from django.conf import settings
from django.core.checks import Error, register


@register("mostro")
def check_chat_settings(app_configs=None, **kwargs) -> list[Error]:
    from disputes.chat.envelope import ENVELOPES

    if settings.MOSTRO_CHAT_ENVELOPE not in ENVELOPES:
        return [
            Error(
                f"MOSTRO_CHAT_ENVELOPE={settings.MOSTRO_CHAT_ENVELOPE} is unknown.",
                hint=f"One of: {', '.join(ENVELOPES)}.",
                id="mostro.E030",
            )
        ]
    return []
