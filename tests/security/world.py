"""The world the authorization matrix runs in: one user per role, a dispute assigned to one
solver, and a row of every table the admin shows, so every URL has something to act on.

Also the snapshot that proves a refused request changed nothing, and the cell runner that
gives every request the same starting world (a savepoint rolled back after each cell).
"""

import uuid
from dataclasses import dataclass, field

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ, Task

from devfee.models import DevFeePayment
from disputes.chat.keys import solver_key_create
from disputes.console import take_as
from disputes.models import Dispute
from mostro_site.api.tokens import api_token_create, scopes_for
from mostro_site.management.commands.sync_schedules import sync_schedules
from mostro_site.operator.services import node_settings_update
from nostrbridge.models import AddressableClock, InboundEvent, RelayHealth
from nostrbridge.protocol.keys import Keys
from orders.bonds.models import Bond
from orders.services.bans import ban_create
from tests.disputes.support import disputed_trade
from tests.disputes.web import PASSWORD, make_user

ROLES = ("anon", "staff", "ro", "rw", "assigned", "operator", "superuser")
ROLE_TITLES = {
    "anon": "anonymous",
    "staff": "staff account without any permission",
    "ro": "read-only solver",
    "rw": "read-write solver not assigned to the dispute",
    "assigned": "read-write solver assigned to the dispute",
    "operator": "operator (group operator, not superuser)",
    "superuser": "superuser (the login `make run` prints; also in the operator group)",
}

# What a refused request must leave exactly as it was: every table of the project's apps, the
# users, groups and permissions, the admin's log, the job queue. Sessions and the login
# throttle's tables are bookkeeping of the request itself; so are the "last seen" columns.
SNAPSHOT_APPS = ("mostro_site", "orders", "disputes", "devfee", "nostrbridge", "django_q", "auth", "admin", "axes")
IGNORED_COLUMNS = {("auth", "user"): {"last_login"}, ("mostro_site", "apitoken"): {"last_used_at"}}


@dataclass
class World:
    users: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    dispute: Dispute | None = None
    pks: dict = field(default_factory=dict)  # model label -> pk of a row to act on
    newcomer_pk: int | None = None  # a staff user with no solver link yet (SolverLink add)
    solver_pubkey: str = ""  # a registered solver key (DELETE /api/solvers/{pubkey})

    def client(self, role: str, *, api: bool = False) -> Client:
        if role == "anon":
            return Client()
        if api:
            return Client(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
        client = Client()
        client.force_login(self.users[role])
        return client


def build_world(fake_ln) -> World:
    world = World()
    users = world.users
    users["staff"] = make_user("staff")
    users["ro"] = make_user("ro", "ro")
    users["rw"] = make_user("rw", "rw")
    users["assigned"] = make_user("assigned", "rw")
    solver_key_create(user=users["assigned"])  # a key the console holds: the chat can be written
    users["operator"] = make_user("operator", "operator")
    users["superuser"] = get_user_model().objects.create_superuser("root", password=PASSWORD)
    users["superuser"].groups.add(users["operator"].groups.get())
    world.newcomer_pk = make_user("newcomer").pk
    world.solver_pubkey = users["ro"].solver_link.pubkey
    for role in ROLES[1:]:
        user = users[role]
        world.tokens[role] = api_token_create(owner=user, name=f"{role} script", scope=scopes_for(user)[-1])[1]

    trade = disputed_trade(fake_ln)
    world.dispute = take_as(users["assigned"], dispute_id=trade.dispute.pk)
    node_settings_update(user=users["operator"], values={"fee": 0.006})
    DevFeePayment.objects.create(order=trade.order, amount_sats=18, destination="dev@example.com")
    Bond.objects.create(
        order=trade.order, role="taker", pubkey=trade.order.buyer_pubkey, identity=trade.order.buyer_pubkey,
        amount_sats=1000, hash="ab" * 32, preimage="cd" * 32, payment_request="lnbcrt10u1", invoice_expires_at=_now(),
    )  # fmt: skip
    RelayHealth.objects.create(relay_url="wss://relay.example", connected=True)
    AddressableClock.objects.get_or_create(kind=38383, d_tag=str(trade.order.pk), defaults={"last_created_at": 1})
    ban_create(pubkey=new_pubkey(), reason="matrix ban", actor="admin:root")  # an unlifted ban to lift
    parked = InboundEvent.objects.create(
        event_id="ee" * 32, kind=1059, pubkey="aa" * 32, event_created_at=1, raw="{}", status="parked", attempts=5
    )
    sync_schedules()
    for name, success in (("done", True), ("failed", False)):
        job = {"func": "orders.jobs.expire_pending_orders", "started": _now(), "stopped": _now()}
        Task.objects.create(id=uuid.uuid4().hex, name=name, success=success, **job)
    OrmQ.objects.create(key="mostro", payload="x", lock=None)
    seen = {"user_agent": "curl", "ip_address": "203.0.113.7", "username": "operator", "http_accept": "*/*"}
    AccessAttempt.objects.create(**seen, path_info="/admin/login/", get_data="", post_data="", failures_since_start=5)
    AccessLog.objects.create(**seen, path_info="/admin/login/")
    AccessFailureLog.objects.create(**seen, path_info="/admin/login/", locked_out=True)
    world.pks = {
        model._meta.label_lower: model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        for model in apps.get_models()
    }
    world.pks["disputes.dispute"] = world.dispute.pk
    world.pks["orders.order"] = trade.order.pk
    world.pks["auth.user"] = world.newcomer_pk
    world.pks["mostro_site.apitoken"] = users["operator"].api_tokens.get().pk
    world.pks["nostrbridge.inboundevent"] = parked.pk  # what "requeue" acts on
    return world


def _now():
    return timezone.now()


def new_pubkey() -> str:
    return Keys.generate().public_key_hex


# --- proving nothing changed ---------------------------------------------------------------------
def snapshot() -> dict:
    state = {}
    for app_label in SNAPSHOT_APPS:
        for model in apps.get_app_config(app_label).get_models(include_auto_created=True):
            ignored = IGNORED_COLUMNS.get((app_label, model._meta.model_name), set())
            columns = [f.attname for f in model._meta.concrete_fields if f.attname not in ignored]
            state[model._meta.label_lower] = list(model._default_manager.order_by("pk").values_list(*columns))
    return state


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(label for label in before if before[label] != after[label])


class _Rollback(Exception):
    pass


def in_savepoint(run):
    """Run `run()` and undo every database write it made; returns its result.

    The savepoint is marked as a test case's own, so services that open a durable atomic
    block (as every entry point does) run inside it exactly as they would at the top level.
    """
    atomic = transaction.atomic()
    atomic._from_testcase = True
    result = None
    try:
        with atomic:
            result = run()
            raise _Rollback
    except _Rollback:
        pass
    return result
