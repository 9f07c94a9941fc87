"""The node's front door: a public landing page (what the node is, where it listens) and favicon."""

from django.conf import settings
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.templatetags.static import static

from mostro_site.config import node_config
from nostrbridge.models import RelayHealth
from nostrbridge.node_identity import encode_npub, node_pubkey


def landing_view(request):
    """Public facts only: the npub, relays and protocol version are what every client needs."""
    config = node_config()
    connected = dict(RelayHealth.objects.values_list("relay_url", "connected"))
    relays = [(url, connected.get(url)) for url in config.relays]
    context = {
        "name": config.name or "Mostro node",
        "about": config.about,
        "npub": encode_npub(node_pubkey()),
        "pubkey": node_pubkey(),
        "relays": relays,
        "protocol_version": config.protocol_version,
        "fee": config.fee,
        "fiat": config.fiat_currencies_accepted,
        "min_sats": config.min_payment_amount_sats,
        "max_sats": config.max_order_amount_sats,
        "chat_envelope": settings.MOSTRO_CHAT_ENVELOPE,
    }
    return render(request, "landing.html", context)


def favicon_view(request):
    return HttpResponseRedirect(static("mostro/favicon.svg"))
