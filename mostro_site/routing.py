"""Websocket routes gathered from the apps (live staff views only)."""

websocket_urlpatterns: list = []
