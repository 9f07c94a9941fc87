"""Live feeds for staff pages; read-only, pushes only.

Services schedule the pushes with `on_commit` (disputes/live.py, disputes/chat/live.py,
orders/live.py); these consumers only relay them to browsers whose user is active staff
allowed to view what the group is about. Pushes carry ids and states, never chat text.

* `ws/staff/live/` (`StaffLiveConsumer`): every feed the user may see — disputes (and their
  chat changes) with `disputes.view_dispute`, orders with `orders.view_order`.
* `ws/staff/disputes/` (`StaffDisputesConsumer`): the dispute feed alone.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from disputes.chat.live import CHAT_CHANGED
from disputes.live import DISPUTE_CHANGED, STAFF_DISPUTES_GROUP
from orders.live import ORDERS_CHANGED, STAFF_ORDERS_GROUP

REJECTED = 4403  # policy: not staff
FEEDS = {STAFF_DISPUTES_GROUP: "disputes.view_dispute", STAFF_ORDERS_GROUP: "orders.view_order"}


@database_sync_to_async
def _groups_for(user, wanted: tuple[str, ...]) -> list[str]:
    if not (user is not None and user.is_authenticated and user.is_active and user.is_staff):
        return []
    return [group for group in wanted if user.has_perm(FEEDS[group])]


class StaffLiveConsumer(AsyncJsonWebsocketConsumer):
    feeds: tuple[str, ...] = (STAFF_DISPUTES_GROUP, STAFF_ORDERS_GROUP)

    async def connect(self) -> None:
        self.groups_joined = await _groups_for(self.scope.get("user"), self.feeds)
        if not self.groups_joined:
            await self.close(code=REJECTED)
            return
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Browsers only listen; anything they send is ignored."""

    async def dispute_changed(self, event: dict) -> None:
        await self.send_json({"type": DISPUTE_CHANGED, "dispute": event["dispute"]})

    async def chat_changed(self, event: dict) -> None:
        await self.send_json({"type": CHAT_CHANGED, "dispute": event["dispute"], "messages": event["messages"]})

    async def orders_changed(self, event: dict) -> None:
        await self.send_json({"type": ORDERS_CHANGED, "orders": event["orders"]})


class StaffDisputesConsumer(StaffLiveConsumer):
    feeds = (STAFF_DISPUTES_GROUP,)
