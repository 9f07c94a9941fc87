"""Every endpoint of the node, read from the URL configuration, the admin registry and the
OpenAPI schema (never from a hand-written list), and how to call each one as each role.

A key names an endpoint in the table (`authz_table.py`):
* a URL name (`admin:disputes_dispute_change`, `operator:settings`), or the route of an unnamed
  pattern; the admin's per-app index is `admin:app_list[<app_label>]`;
* an admin action: `admin:<app>_<model>_changelist?action=<name>` (always a POST);
* a REST operation: its OpenAPI path (`/api/disputes/{dispute_id}/take`).
"""

import json
import re
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import URLResolver, get_resolver, reverse

from mostro_site.api.root import api
from tests.disputes.web import PASSWORD
from tests.security.world import World, new_pubkey

API_PAGES = {"api:openapi-json", "api:openapi-view", "api:api-root"}  # pages, not operations
NEW_PASSWORD = "N3w!password-for-the-matrix"  # noqa: S105


@dataclass(frozen=True, order=True)
class Endpoint:
    key: str
    method: str

    def __str__(self) -> str:
        return f"{self.method} {self.key}"


# --- enumeration ---------------------------------------------------------------------------------
def _walk(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            yield prefix + str(pattern.pattern), f"{namespace}{pattern.name}" if pattern.name else None


def _model_admins() -> dict[str, tuple[type, admin.ModelAdmin]]:
    """`<app>_<model>` -> (model, its ModelAdmin)."""
    return {f"{m._meta.app_label}_{m._meta.model_name}": (m, ma) for m, ma in admin.site._registry.items()}


def model_app(prefix: str) -> str:
    return _model_admins()[prefix][0]._meta.app_label


def model_key_of(key: str) -> tuple[str, str] | None:
    """`admin:<app>_<model>_<suffix>` -> (`<app>_<model>`, suffix), for a registered model."""
    for prefix in sorted(_model_admins(), key=len, reverse=True):
        if key.startswith(f"admin:{prefix}_"):
            return prefix, key[len(f"admin:{prefix}_") :]
    return None


def url_endpoints() -> set[Endpoint]:
    """Every page of the URL configuration (GET and POST), plus every admin action (POST)."""
    keys = set()
    api_routes = set()
    for route, name in _walk(get_resolver().url_patterns):
        if name and name.startswith("api:") and name not in API_PAGES:
            api_routes.add(_openapi_path(route))
            continue
        if name == "admin:app_list":
            keys |= {f"admin:app_list[{label}]" for label in {m._meta.app_label for m in admin.site._registry}}
        else:
            keys.add(name or route)
    missing = api_routes - {path for path, _ in _openapi_operations()}
    assert not missing, f"REST routes missing from the OpenAPI schema: {sorted(missing)}"
    endpoints = {Endpoint(key, method) for key in keys for method in ("GET", "POST")}
    for prefix, (_, model_admin) in _model_admins().items():
        for _, name, _ in model_admin._get_base_actions():
            endpoints.add(Endpoint(f"admin:{prefix}_changelist?action={name}", "POST"))
    return endpoints


def _openapi_path(route: str) -> str:
    route = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", route)
    return "/" + route.rstrip("$").lstrip("^")


def _openapi_operations() -> list[tuple[str, str]]:
    schema = api.get_openapi_schema()
    return [(path, method.upper()) for path, methods in schema["paths"].items() for method in methods]


def api_endpoints() -> set[Endpoint]:
    return {Endpoint(path, method) for path, method in _openapi_operations()}


def all_endpoints() -> set[Endpoint]:
    return url_endpoints() | api_endpoints()


# --- calling one ---------------------------------------------------------------------------------
def call(world: World, endpoint: Endpoint, role: str):
    if endpoint.key.startswith("/api/"):
        return _call_api(world, endpoint, role)
    client = world.client(role)
    url, data = _url_and_data(world, endpoint)
    if endpoint.method == "GET":
        return client.get(url)
    return client.post(url, data)


def _call_api(world: World, endpoint: Endpoint, role: str):
    client = world.client(role, api=True)
    path = endpoint.key.format(
        dispute_id=world.dispute.pk,
        order_id=world.dispute.order_id,
        pubkey=world.solver_pubkey,
        ban_id=world.pks["orders.ban"],
    )
    body = _API_BODIES.get(endpoint.key, {"pubkey": new_pubkey(), "permission": "read", "reason": "matrix"})
    body = body if endpoint.method == "POST" else None
    kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
    return client.generic(endpoint.method, path, **kwargs)


def _url_and_data(world: World, endpoint: Endpoint) -> tuple[str, dict]:
    key, _, action = endpoint.key.partition("?action=")
    if action:
        model, _ = _model_admins()[model_key_of(key)[0]]
        pk = world.pks[model._meta.label_lower]
        return reverse(key), {"action": action, "_selected_action": [pk], "index": "0", "post": "yes"}
    if key.startswith("admin:app_list["):
        return reverse("admin:app_list", kwargs={"app_label": key[len("admin:app_list[") : -1]}), {}
    special = _SITE_URLS.get(key)
    if special:
        return special(world)
    if key.endswith("/<path:object_id>/"):  # the admin's old-style link to a change page
        app_label, model_name = key.split("/")[1:3]
        return "/" + key.replace("<path:object_id>", str(world.pks[f"{app_label}.{model_name}"])), {}
    model_key = model_key_of(key)
    if model_key:
        return _model_url(world, key, *model_key)
    return reverse(key), {}


def _model_url(world: World, key: str, prefix: str, suffix: str) -> tuple[str, dict]:
    model, _ = _model_admins()[prefix]
    if suffix in ("changelist", "add"):
        url = reverse(key)
    elif suffix == "chat_attachment":  # a message that is not there: the gate runs before the lookup
        url = reverse(key, args=[world.pks[model._meta.label_lower], 999_999])
    else:
        url = reverse(key, args=[world.pks[model._meta.label_lower]])
    return url, _POST_DATA.get(key, lambda w: {"post": "yes"} if suffix != "change" else {})(world)


def _solverlink_data(world: World) -> dict:
    return {"user": world.newcomer_pk, "pubkey": new_pubkey()}


def _user_change_data(world: World) -> dict:
    return {
        "username": "newcomer-renamed",
        "is_active": "on",
        "is_staff": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }


# Form data a role that may write sends (a refused role sends the same: the attack is the same).
_POST_DATA = {
    "admin:disputes_solverlink_add": _solverlink_data,
    "admin:disputes_solverlink_change": lambda w: {"user": w.users["ro"].pk, "pubkey": new_pubkey()},
    "admin:mostro_site_apitoken_add": lambda w: {"name": "mine", "scope": "read", "lifetime_days": "30"},
    "admin:auth_user_add": lambda w: {
        "username": "fresh",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "usable_password": "true",
    },
    "admin:auth_user_change": _user_change_data,
    "admin:auth_user_password_change": lambda w: {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    "admin:auth_group_add": lambda w: {"name": "fresh group"},
    "admin:auth_group_change": lambda w: {"name": "renamed group"},
    "admin:disputes_dispute_ban": lambda w: {"party": "buyer", "reason": "fake bank receipts"},
    "admin:orders_ban_add": lambda w: {"pubkey": new_pubkey(), "reason": "spam"},
    "admin:disputes_dispute_chat_send": lambda w: {"party": "buyer", "text": "Please send the bank receipt."},
    "admin:mostro_site_nodesettings_add": lambda w: {"fee": "1", "max_routing_fee": "50", "pow_bits": "255"},
    "admin:mostro_site_nodesettings_change": lambda w: {"fee": "1", "max_routing_fee": "50", "pow_bits": "255"},
}

SETTINGS_FORM = {
    "fee": "0.01",
    "max_routing_fee": "0.002",
    "min_payment_amount_sats": "200",
    "max_order_amount_sats": "500000",
    "expiration_hours": "12",
    "expiration_seconds": "600",
    "pow_bits": "0",
    "dev_fee_percent": "30",
    "fiat_mode": "all",
    "bitcoin_price_api_url": "https://api.yadio.io",
    "relays": "ws://127.0.0.1:7000",
    "protocol_version": "2",
}


def _view_on_site(world: World) -> tuple[str, dict]:
    content_type = ContentType.objects.get_for_model(world.dispute)
    return reverse("admin:view_on_site", args=[content_type.pk, world.dispute.pk]), {}


# POST bodies that are not a solver's (the default above).
_API_BODIES: dict[str, dict] = {"/api/maintenance": {"enabled": True, "reason": "authorization matrix"}}

_SITE_URLS = {
    "operator:maintenance": lambda w: (reverse("operator:maintenance"), {"enabled": "on", "reason": "matrix"}),
    "admin:view_on_site": _view_on_site,
    "admin:autocomplete": lambda w: (
        reverse("admin:autocomplete") + "?app_label=disputes&model_name=solverlink&field_name=user&term=a",
        {},
    ),
    "admin:password_change": lambda w: (
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    ),
    "admin:login": lambda w: (reverse("admin:login"), {"username": "operator", "password": "wrong"}),
    "operator:settings": lambda w: (reverse("operator:settings"), SETTINGS_FORM),
    "admin/(?P<url>.*)$": lambda w: ("/admin/no-such-page/", {}),
    "api:openapi-json": lambda w: (reverse("api:openapi-json"), {}),
    "api:openapi-view": lambda w: (reverse("api:openapi-view"), {}),
}
