"""The solver's own key: create one held by the console, or link a NIP-07 extension's key.

Mounted at /console/ (`console:` URL names); staff only, and the services refuse users who may
not take disputes (`disputes.chat.keys`).
"""

import json
import secrets

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_POST

from disputes.chat.keys import PROOF_KIND, solver_key_create, solver_key_link_external
from disputes.chat.models import SolverKey
from disputes.console import ConsoleForbidden
from disputes.models import SolverLink
from nostrbridge.node_identity import encode_npub

CHALLENGE_SESSION_KEY = "console_key_challenge"


@staff_member_required
def key_view(request):
    if request.method == "POST":
        try:
            row = solver_key_create(user=request.user)
        except ConsoleForbidden as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"New solver key {encode_npub(row.pubkey)} created and registered.")
        return redirect("console:key")
    link = SolverLink.objects.filter(user=request.user).first()
    held = SolverKey.objects.filter(user=request.user).first()
    challenge = secrets.token_hex(16)
    request.session[CHALLENGE_SESSION_KEY] = challenge
    context = {
        **admin.site.each_context(request),
        "title": "My solver key",
        "link": link,
        "npub": encode_npub(link.pubkey) if link else "",
        "held": held is not None and link is not None and held.pubkey == link.pubkey,
        "challenge": challenge,
        "proof_kind": PROOF_KIND,
    }
    return TemplateResponse(request, "console/key.html", context)


@staff_member_required
@require_POST
def nip07_view(request):
    challenge = request.session.pop(CHALLENGE_SESSION_KEY, "")
    try:
        proof = json.loads(request.body or b"{}").get("event")
        link = solver_key_link_external(
            user=request.user, proof=proof if isinstance(proof, dict) else {}, challenge=challenge
        )
    except (ValueError, AttributeError):
        return JsonResponse({"code": "bad_proof", "message": "send the signed event as JSON"}, status=400)
    except ConsoleForbidden as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=403)
    return JsonResponse({"pubkey": link.pubkey, "npub": encode_npub(link.pubkey)})


app_name = "console"
urlpatterns = [
    path("key/", key_view, name="key"),
    path("key/nip07/", nip07_view, name="key-nip07"),
]
