"""`/healthz` (the process answers), `/readyz` (the node can trade) and `/metrics` (Prometheus).

`/healthz` and `/readyz` are open: load balancers, container engines and systemd probes call
them without credentials, and they reveal states, not hosts or errors. `/metrics` needs the
scrape token (`Authorization: Bearer $MOSTRO_METRICS_TOKEN`): a token that can read metrics and
nothing else, kept apart from the admin API's tokens; unset, the endpoint is off (404).
"""

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from mostro_site.ops.exporter import render_metrics
from mostro_site.ops.readiness import arun_checks, is_ready
from nostrbridge.log_context import current_role


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "role": current_role(), "pid": os.getpid()})


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    results = await arun_checks()
    ready = is_ready(results)
    body = {"status": "ok" if ready else "fail", "checks": {result.name: result.public() for result in results}}
    response = JsonResponse(body, status=200 if ready else 503)
    # "Not ready" is a state the probe reports, not a server error: no django.request ERROR line.
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag (django.utils.log)
    return response


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    expected = settings.MOSTRO_METRICS_TOKEN
    if not expected:
        return JsonResponse({"code": "metrics_disabled", "message": "set MOSTRO_METRICS_TOKEN to enable"}, status=404)
    if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
        response = JsonResponse({"code": "invalid_token", "message": "a valid metrics token is required"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
