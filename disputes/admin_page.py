"""The dispute page of the solver console and its chat endpoints (admin views of DisputeAdmin).

One page holds every fact a solver needs (disputes.facts), the two conversations and the
timeline; the raw model fields are not shown. Nothing here writes except `chat_send_view`,
which goes through the chat service (outbox row and message in one transaction).
"""

import re
import threading
from datetime import timedelta

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from disputes import facts
from disputes.chat.attachments import AttachmentError, decrypt_blob, fetch_blob, parse_attachment
from disputes.chat.keys import console_keys
from disputes.chat.models import ChatMessage, SolverKey
from disputes.chat.services import chat_history, chat_is_open, chat_send, conversation, may_read_chat, open_body
from disputes.console import RESOLVE_PERMISSION, TAKE_PERMISSION, ConsoleForbidden, web_actor
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute
from disputes.selectors import dispute_amounts, dispute_timeline
from nostrbridge.node_identity import encode_npub, node_pubkey
from orders.services.bans import BanConflict, ban_create

BAN_PERMISSION = "orders.add_ban"

# The node fetches a file from its server once, not at every page view (per process, in memory).
ATTACHMENT_CACHE_S = 600
ATTACHMENT_CACHE_MAX_BYTES = 5 * 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")
_FETCHING: dict[int, threading.Lock] = {}


def _actor(user):
    try:
        return web_actor(user)
    except ConsoleForbidden:
        return None


def _chat_context(request, dispute: Dispute, actor) -> dict:
    readable = may_read_chat(request.user, dispute)
    holder_key = dispute.solver_pubkey and SolverKey.objects.filter(pubkey=dispute.solver_pubkey).exists()
    mine = actor is not None and dispute.solver_pubkey == actor.pubkey
    if not dispute.solver_pubkey:
        why_not = "Take the dispute to talk to the parties."
    elif dispute.solver_pubkey == node_pubkey():
        why_not = "The node's key holds this dispute; it never chats. A solver with a console key must take it."
    elif not holder_key:
        why_not = "The solver's key is not held by the console (a NIP-07 or external key): chat from a Nostr client."
    elif not mine:
        why_not = "Only the dispute's solver writes to the parties."
    elif not chat_is_open(dispute):
        why_not = "The chat closed a day after the resolution."
    else:
        why_not = ""
    if not readable and dispute.solver_pubkey:
        why_not = "The chat is shown to the dispute's solver and to operators."
    return {
        "chat_readable": readable,
        "chat_writable": readable and not why_not,
        "chat_why_not": why_not,
        "chat_messages": chat_history(dispute) if readable else [],
    }


def page_context(request, model_admin, dispute: Dispute) -> dict:
    order = dispute.order
    now = timezone.now()
    actor = _actor(request.user)
    is_open = dispute.status in OPEN_DISPUTE_STATUSES
    assigned = actor is not None and dispute.solver_pubkey == actor.pubkey
    clock = facts.escrow_clock(order)
    expiry_eta = clock.eta(clock.blocks_left, now)
    guardian_eta = clock.eta(clock.guardian_blocks_left, now)
    user = request.user
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"Dispute {str(dispute.pk)[:8]}",
        "dispute": dispute,
        "order": order,
        "now": now,
        "timeline": dispute_timeline(dispute),
        "money": dispute_amounts(order),
        "price": facts.order_price(order),
        "invoice_state": clock.state,
        "clock": clock,
        "expiry_eta": expiry_eta,
        "expiry_level": facts.EscrowClock.level(expiry_eta, now),
        "guardian_eta": guardian_eta,
        "guardian_level": facts.EscrowClock.level(guardian_eta, now),
        "waiting": facts.waiting(dispute, now),
        "parties": [facts.party_facts(order, dispute, role) for role in ("buyer", "seller")],
        "solver_npub": encode_npub(dispute.solver_pubkey) if dispute.solver_pubkey else "",
        "solver_is_node": dispute.solver_pubkey == node_pubkey(),
        "solver_is_me": assigned,
        "can_take": is_open and not assigned and user.has_perm(TAKE_PERMISSION),
        "assigned_to_me": assigned,
        "can_resolve": is_open and assigned and order.status == "dispute" and user.has_perm(RESOLVE_PERMISSION),
        "can_ban": user.has_perm(BAN_PERMISSION),
        **_chat_context(request, dispute, actor),
    }


def render_page(request, model_admin, dispute: Dispute) -> TemplateResponse:
    return TemplateResponse(request, "admin/disputes/dispute/console.html", page_context(request, model_admin, dispute))


def _readable(request, object_id) -> Dispute:
    dispute = Dispute.objects.select_related("order").filter(pk=object_id).first()
    if dispute is None:
        raise Http404("no such dispute")
    if not may_read_chat(request.user, dispute):
        raise PermissionDenied
    return dispute


@require_POST
def ban_party_view(request, object_id):
    """ "Ban this party", next to the resolution: bans the buyer's or the seller's identity (its
    trade key in full privacy) through the bans service; back to the console with the outcome."""
    if not request.user.has_perm(BAN_PERMISSION):
        raise PermissionDenied
    dispute = Dispute.objects.select_related("order").filter(pk=object_id).first()
    if dispute is None:
        raise Http404("no such dispute")
    role = request.POST.get("party", "")
    if role not in ("buyer", "seller"):
        raise Http404("no such party")
    party = facts.party_facts(dispute.order, dispute, role)
    days = request.POST.get("days", "").strip()
    expires_at = timezone.now() + timedelta(days=int(days)) if days.isdigit() and int(days) > 0 else None
    try:
        assert party.ban_key is not None  # a disputed order has both parties
        ban_create(
            pubkey=party.ban_key,
            reason=request.POST.get("reason", ""),
            expires_at=expires_at,
            actor=f"admin:{request.user.get_username()}",
        )
        messages.success(request, f"The {role} is banned: new orders, takes and disputes are refused.")
    except ValidationError as exc:
        messages.error(request, " ".join(" ".join(m) for m in exc.message_dict.values()))
    except BanConflict:
        messages.warning(request, f"The {role} is already banned.")
    return HttpResponseRedirect(reverse("admin:disputes_dispute_change", args=[dispute.pk]))


def chat_messages_view(request, object_id):
    """GET: messages after `after` (an id), or the `ids` named by a live push."""
    dispute = _readable(request, object_id)
    ids = request.GET.get("ids")
    if ids:
        wanted = [int(part) for part in ids.split(",") if part.isdigit()][:100]
        return JsonResponse({"messages": chat_history(dispute, ids=wanted)})
    after = request.GET.get("after", "0")
    return JsonResponse({"messages": chat_history(dispute, after_id=int(after) if after.isdigit() else 0)})


@require_POST
def chat_send_view(request, object_id):
    try:
        message = chat_send(
            user=request.user,
            dispute_id=object_id,
            party=request.POST.get("party", ""),
            text=request.POST.get("text", ""),
        )
    except ConsoleForbidden as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=403)
    return JsonResponse({"messages": chat_history(message.dispute, ids=[message.pk])}, status=201)


def _attachment_content(message_id: int, url: str, shared: bytes) -> bytes:
    """Fetch and decrypt once per message: concurrent views of one file wait for the first."""
    cache_key = f"chat-attachment:{message_id}"
    try:
        with _FETCHING.setdefault(message_id, threading.Lock()):
            content = cache.get(cache_key)
            if content is None:
                content = decrypt_blob(fetch_blob(url), shared)
                if len(content) <= ATTACHMENT_CACHE_MAX_BYTES:
                    cache.set(cache_key, content, ATTACHMENT_CACHE_S)
            return content
    finally:
        _FETCHING.pop(message_id, None)


def chat_attachment_view(request, object_id, message_id):
    """The decrypted file of an inbound attachment, served from the node's own origin."""
    dispute = _readable(request, object_id)
    message = ChatMessage.objects.filter(pk=message_id, dispute=dispute).first()
    attachment = parse_attachment(open_body(message).get("text", "")) if message else None
    if message is None or attachment is None:
        raise Http404("no attachment")
    solver = console_keys(message.solver_pubkey)
    conv = conversation(dispute, message.party, solver) if solver else None
    if conv is None or conv.party_pubkey != message.party_pubkey:
        return HttpResponse("The conversation key is not available.", status=409, content_type="text/plain")
    try:
        content = _attachment_content(message.pk, attachment.url, conv.keys.shared)
    except AttachmentError as exc:
        return HttpResponse(f"The attachment could not be opened: {exc}", status=502, content_type="text/plain")
    response = HttpResponse(
        content, content_type=attachment.mime_type if attachment.inline else "application/octet-stream"
    )
    disposition = "inline" if attachment.inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{_SAFE_NAME.sub("_", attachment.filename)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = f"private, max-age={ATTACHMENT_CACHE_S}"
    return response
