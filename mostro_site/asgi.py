"""ASGI entry: HTTP goes to Django, websockets to the Channels router (staff live views)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from mostro_site.routing import websocket_urlpatterns  # noqa: E402
from nostrbridge.log_context import process_role, set_process_role  # noqa: E402

if process_role() == "cli":  # daphne/uvicorn serving this module; `mostrod` set its own role
    set_process_role("web")

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
