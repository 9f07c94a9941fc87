"""The admin's front page: trading first (orders, disputes, the operator's dashboard), then
solvers and access, then every internal table under one heading; names read as words."""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from mostro_site.staff import is_operator

TRADING = "Trading"
ACCESS = "Solvers and access"
INTERNAL = "Internal tables"
# (app label, model) → section, in the order shown; anything not listed is internal.
SECTIONS = {
    ("orders", "order"): TRADING,
    ("disputes", "dispute"): TRADING,
    ("operator", "dashboard"): TRADING,
    ("operator", "settings"): TRADING,
    ("orders", "trader"): TRADING,
    ("disputes", "solverlink"): ACCESS,
    ("disputes", "solverkey"): ACCESS,
    ("mostro_site", "apitoken"): ACCESS,
    ("auth", "user"): ACCESS,
    ("auth", "group"): ACCESS,
}
ORDER = [TRADING, ACCESS, INTERNAL]
NAMES = {
    ("orders", "order"): "Orders",
    ("disputes", "dispute"): "Disputes",
    ("orders", "trader"): "Traders",
    ("disputes", "solverlink"): "Solver logins (user → solver key)",
    ("mostro_site", "apitoken"): "API tokens",
    ("orders", "orderstatuschange"): "Order status changes",
    ("orders", "btcprice"): "Bitcoin prices",
    ("nostrbridge", "inboundevent"): "Inbound Nostr events (inbox)",
    ("nostrbridge", "outboundmessage"): "Outbound Nostr events (outbox)",
    ("nostrbridge", "relayhealth"): "Relay health",
    ("devfee", "devfeepayment"): "Development fee payments",
    ("orders", "bond"): "Anti-abuse bonds",
    ("mostro_site", "nodesettings"): "Node settings",
    ("mostro_site", "settingsauditentry"): "Node settings changes",
}


POSITION = {key: index for index, key in enumerate(SECTIONS)}


def _page(name: str, url_name: str) -> dict | None:
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        return None
    return {
        "name": name,
        "key": tuple(url_name.split(":")),
        "object_name": url_name.replace(":", "_"),
        "admin_url": url,
        "add_url": None,
        "view_only": True,
        "perms": {"view": True},
        "model": None,
    }


class MostroAdminSite(admin.AdminSite):
    site_header = "Mostro node"
    site_title = "Mostro"
    index_title = "Console"
    site_url = "/"
    # The header's console links replace the sidebar, which took a quarter of a 1280-px screen.
    enable_nav_sidebar = False

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        sections: dict[str, list[dict]] = {name: [] for name in ORDER}
        for app in apps:
            for model in app["models"]:
                model["key"] = (app["app_label"], model["object_name"].lower())
                model["name"] = NAMES.get(model["key"], model["name"])
                sections[SECTIONS.get(model["key"], INTERNAL)].append(model)
        if is_operator(request.user):
            pages = [
                _page("Operator dashboard", "operator:dashboard"),
                _page("Node settings form", "operator:settings"),
            ]
            sections[TRADING] += [page for page in pages if page]
        for models in sections.values():
            models.sort(key=lambda model: POSITION.get(model["key"], len(POSITION)))
        return [
            {
                "name": name,
                "app_label": name.lower().replace(" ", "-"),
                "app_url": models[0]["admin_url"],
                "has_module_perms": True,
                "models": models,
            }
            for name in ORDER
            if (models := sections[name])
        ]
