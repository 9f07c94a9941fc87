"""The staff roles, node-wide: the three groups, what each may do, and who is an operator.

Every app may read this module; it imports none of them. The groups are created (idempotently)
after every migrate by a `post_migrate` receiver rather than a data migration: Django creates
permissions in its own `post_migrate` step, after all migrations ran, so a migration on a fresh
database would find none of them. The receiver runs for every app and assigns whatever
permissions exist so far; after the last app every one of them exists.
"""

SOLVER_READ_GROUP = "solver read"
SOLVER_READ_WRITE_GROUP = "solver read-write"
OPERATOR_GROUP = "operator"

# Every staff role may keep its own API tokens (the admin shows a user only its own).
_OWN_TOKENS = ["mostro_site.view_apitoken", "mostro_site.add_apitoken"]
_READ = [
    "disputes.view_dispute",
    "disputes.take_dispute",
    "orders.view_order",
    "orders.view_orderstatuschange",
    *_OWN_TOKENS,
]
GROUP_PERMISSIONS: dict[str, list[str]] = {
    SOLVER_READ_GROUP: _READ,
    # Read-write solvers may ban a party (the console's "ban this party"); only operators lift.
    SOLVER_READ_WRITE_GROUP: [*_READ, "disputes.resolve_dispute", "orders.view_ban", "orders.add_ban"],
    OPERATOR_GROUP: [
        *_READ,
        "disputes.resolve_dispute",
        "disputes.manage_solvers",
        "disputes.view_solverlink",
        "disputes.add_solverlink",
        "disputes.change_solverlink",
        "disputes.delete_solverlink",
        "orders.view_trader",
        "orders.view_ban",
        "orders.add_ban",
        "orders.change_ban",  # lifting a ban
        "orders.view_btcprice",
        "devfee.view_devfeepayment",
        "orders.view_bond",
        "mostro_site.view_nodesettings",
        "mostro_site.view_settingsauditentry",
        # The node's plumbing, read-only: what reached the relays, what came in, relay health.
        "nostrbridge.view_outboundmessage",
        "nostrbridge.view_inboundevent",
        "nostrbridge.view_relayhealth",
    ],
}


def ensure_groups(**_kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    for name, dotted in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [tuple(item.split(".", 1)) for item in dotted]
        perms = [
            perm
            for perm in Permission.objects.filter(codename__in=[c for _, c in wanted]).select_related("content_type")
            if (perm.content_type.app_label, perm.codename) in wanted
        ]
        group.permissions.add(*perms)


def is_operator(user) -> bool:
    """Operators (and superusers) run the node and act as the node key: an admin on every dispute."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=OPERATOR_GROUP).exists()
