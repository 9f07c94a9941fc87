"""Dispute and admin handlers: one module per protocol action, each exposing `handle_<action>(ctx)`."""

HANDLERS: dict = {}
