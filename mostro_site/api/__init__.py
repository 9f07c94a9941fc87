"""The REST admin API (django-ninja): the root in `root.py`, one router module per area, token
authentication in `auth.py` and the tokens' lifecycle in `tokens.py`.

Kept free of imports, so a module may import `mostro_site.api.auth` without loading the whole
API (which imports the routers)."""
