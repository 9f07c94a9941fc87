"""Live dispute feed for staff pages (group `staff.disputes`); read-only, pushes only.

Services schedule the pushes with `on_commit` (disputes/live.py); this consumer only relays
them to browsers whose user is active staff allowed to view disputes.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from disputes.live import DISPUTE_CHANGED, STAFF_DISPUTES_GROUP

REJECTED = 4403  # policy: not staff


@database_sync_to_async
def _may_watch(user) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm("disputes.view_dispute")
    )


class StaffDisputesConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not await _may_watch(self.scope.get("user")):
            await self.close(code=REJECTED)
            return
        await self.channel_layer.group_add(STAFF_DISPUTES_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(STAFF_DISPUTES_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Browsers only listen; anything they send is ignored."""

    async def dispute_changed(self, event: dict) -> None:
        await self.send_json({"type": DISPUTE_CHANGED, "dispute": event["dispute"]})
