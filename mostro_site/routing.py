"""Websocket routes gathered from the apps (live staff views only)."""

from django.urls import path

from disputes.consumers import StaffDisputesConsumer, StaffLiveConsumer

websocket_urlpatterns: list = [
    path("ws/staff/disputes/", StaffDisputesConsumer.as_asgi()),
    path("ws/staff/live/", StaffLiveConsumer.as_asgi()),
]
