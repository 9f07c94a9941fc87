"""ASGI entry: HTTP goes to Django, websockets to the Channels router (staff live views)."""

import os
import sys
from pathlib import Path

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from mostro_site.routing import websocket_urlpatterns  # noqa: E402
from nostrbridge.event_settings import lnd_network_fetch  # noqa: E402
from nostrbridge.log_context import process_role, set_process_role  # noqa: E402

# A web server's process (`mostrod` sets its own role; tests importing this module keep theirs).
if process_role() == "cli" and Path(sys.argv[0]).name in ("daphne", "uvicorn", "hypercorn", "gunicorn"):
    set_process_role("web")
    lnd_network_fetch()  # once per process (operator and solver actions publish order events)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# `daphne mostro_site.asgi:application_with_static`: the same, also serving /static/ from the
# apps' static directories (the split web process needs no reverse-proxy rule or collectstatic).
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

application_with_static = ASGIStaticFilesHandler(application)
