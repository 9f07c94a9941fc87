"""Re-seal every solver key and chat message with the current console encryption key.

After rotating MOSTRO_CONSOLE_ENCRYPTION_KEY (or DJANGO_SECRET_KEY when that is unset), keep
the old value in MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS, run this, then drop the fallback.
Rows already sealed with the current key are left alone, so it can be run again safely.
"""

from django.core.management.base import BaseCommand, CommandError

from disputes.chat import atrest
from disputes.chat.keys import solver_key_reseal
from disputes.chat.models import ChatMessage, SolverKey
from disputes.chat.services import chat_reseal

BATCH = 500


class Command(BaseCommand):
    help = "Re-seal the console's solver keys and chat messages with the current encryption key."

    def handle(self, *args, **options):
        try:
            keys = sum(solver_key_reseal(row) for row in SolverKey.objects.all())
            messages = 0
            for row in ChatMessage.objects.only("id", "inner_event_id", "body_sealed").iterator(chunk_size=BATCH):
                messages += chat_reseal(row)
        except atrest.SealError as exc:
            raise CommandError(f"{exc}. Put the previous key in MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS.") from exc
        self.stdout.write(f"re-sealed {keys} solver key(s) and {messages} chat message(s)")
