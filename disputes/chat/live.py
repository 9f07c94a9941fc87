"""Post-commit pushes for the dispute chat: which messages of which dispute changed (ids only).

The message text never travels over the channel layer: a console page that shows the dispute
fetches the named messages through a view that checks who may read them.
"""

from functools import partial

from django.db import transaction

from disputes.live import STAFF_DISPUTES_GROUP, push_to_staff

CHAT_CHANGED = "chat.changed"


def chat_changed_on_commit(dispute_id, message_ids: list[int]) -> None:
    event = {"type": CHAT_CHANGED, "dispute": str(dispute_id), "messages": list(message_ids)}
    transaction.on_commit(partial(push_to_staff, STAFF_DISPUTES_GROUP, event), robust=True)


def chat_changed_now(dispute_id, message_ids: list[int]) -> None:
    """Outside a transaction (the bridge's delivery reports)."""
    push_to_staff(STAFF_DISPUTES_GROUP, {"type": CHAT_CHANGED, "dispute": str(dispute_id), "messages": message_ids})
