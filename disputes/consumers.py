"""Live feeds for staff pages; read-only, pushes only.

Services schedule the pushes with `on_commit` (disputes/live.py, disputes/chat/live.py,
orders/live.py); these consumers only relay them to browsers whose user is active staff
allowed to view what the group is about. Pushes carry ids and states, never chat text.

* `ws/staff/live/` (`StaffLiveConsumer`): every feed the user may see — disputes (and their
  chat changes) with `disputes.view_dispute`, orders with `orders.view_order`.
* `ws/staff/disputes/` (`StaffDisputesConsumer`): the dispute feed alone.

With MOSTRO_LIVE_POLL_SECONDS > 0 each connection also watches the database (live_poll.py), so
changes made by processes outside the channel layer (the job cluster's workers on the
in-memory layer) reach the page too.
"""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from disputes.chat.live import CHAT_CHANGED
from disputes.live import DISPUTE_CHANGED, STAFF_DISPUTES_GROUP
from disputes.live_poll import ChangeWatch
from orders.live import ORDERS_CHANGED, STAFF_ORDERS_GROUP

logger = logging.getLogger(__name__)

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
        interval_s = settings.MOSTRO_LIVE_POLL_SECONDS
        if interval_s > 0:
            self.watch_task = asyncio.ensure_future(self._watch_database(interval_s))

    async def disconnect(self, code) -> None:
        task = getattr(self, "watch_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _watch_database(self, interval_s: float) -> None:
        watch = ChangeWatch(self.groups_joined)
        look = database_sync_to_async(watch.look)
        while True:
            await asyncio.sleep(interval_s)
            try:
                messages = await look()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not close the page; the next look retries
                logger.warning("live page database feed: %s", exc)
                continue
            for message in messages:
                await self.send_json(message)

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
