"""Operator pages (settings form, dashboard). OWNER: operator-node work."""

urlpatterns: list = []
