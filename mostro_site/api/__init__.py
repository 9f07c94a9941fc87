"""The REST admin API (django-ninja): the root in `root.py`, one router module per area."""
