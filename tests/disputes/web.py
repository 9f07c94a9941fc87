"""Staff users, groups, solver links and API tokens for the admin, API and browser tests."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from disputes.models import SolverLink
from disputes.services import solver_grant
from mostro_site.api.tokens import api_token_create, scopes_for
from mostro_site.staff import OPERATOR_GROUP, SOLVER_READ_GROUP, SOLVER_READ_WRITE_GROUP
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.keys import Keys
from orders.models import SolverCategory

PASSWORD = "correct horse battery staple"
GROUPS = {"operator": OPERATOR_GROUP, "rw": SOLVER_READ_WRITE_GROUP, "ro": SOLVER_READ_GROUP}


def make_user(username: str, role: str | None = None, *, keys: Keys | None = None):
    """A staff user in the role's group; solvers are linked to `keys` (registered as solvers)."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=GROUPS[role]))
    if role in ("rw", "ro"):
        keys = keys or Keys.generate()
        SolverLink.objects.create(user=user, pubkey=keys.public_key_hex)
        category = SolverCategory.READ_WRITE if role == "rw" else SolverCategory.READ
        solver_grant(actor_pubkey=node_pubkey(), pubkey=keys.public_key_hex, category=category)
    return user


def browser(user):
    """A Django test client logged in as `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def bearer(user) -> dict:
    _, key = api_token_create(owner=user, name="test", scope=scopes_for(user)[-1])
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def linked_pubkey(user) -> str:
    return user.solver_link.pubkey
