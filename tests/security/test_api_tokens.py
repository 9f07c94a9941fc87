"""API tokens: created by their owner, shown once, expiring, scoped on top of the user's rights."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from disputes.models import Dispute, DisputeLog
from lightning.types import InvoiceState
from mostro_site.api.tokens import api_token_create, scopes_for
from mostro_site.models import ApiToken
from orders.models import Trader
from tests.disputes.support import disputed_trade
from tests.disputes.web import make_user

pytestmark = pytest.mark.django_db
ADD = reverse("admin:mostro_site_apitoken_add")
CHANGELIST = reverse("admin:mostro_site_apitoken_changelist")


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _created_key(response) -> str:
    [message] = [str(m) for m in response.context["messages"] if "shown only once" in str(m)]
    return message.rsplit(": ", 1)[1]


def test_an_operator_cannot_mint_a_token_for_someone_else(db):
    """The finding: a `user` field in the add form let an operator create and read a solver's key."""
    operator, solver = make_user("op", "operator"), make_user("sol", "rw")
    data = {"user": solver.pk, "name": "stolen", "scope": "operator", "lifetime_days": "30"}
    response = browser(operator).post(ADD, data, follow=True)
    token = ApiToken.objects.get(name="stolen")
    assert (token.user, token.scope) == (operator, "operator")  # the `user` field is not there
    assert ApiToken.hash_key(_created_key(response)) == token.key_hash
    assert solver.api_tokens.count() == 0


def test_key_is_shown_once_and_stored_hashed(db):
    solver = make_user("sol", "rw")
    client = browser(solver)
    key = _created_key(client.post(ADD, {"name": "cli", "scope": "resolve", "lifetime_days": "7"}, follow=True))
    token = ApiToken.objects.get(name="cli")
    assert (token.prefix, token.key_hash, token.scope) == (key[:8], ApiToken.hash_key(key), "resolve")
    assert round((token.expires_at - token.created_at).total_seconds() / 86400) == 7
    for page in (CHANGELIST, reverse("admin:mostro_site_apitoken_change", args=[token.pk])):
        assert key not in client.get(page).content.decode()


def test_scope_beyond_the_user_is_neither_offered_nor_accepted(db):
    reader = make_user("reader", "ro")
    assert scopes_for(reader) == ["read", "resolve"]  # a read-only solver may still take
    assert scopes_for(make_user("nobody")) == ["read"]
    form = browser(reader).get(ADD).context["adminform"].form
    assert [value for value, _ in form.fields["scope"].choices] == ["read", "resolve"]
    response = browser(reader).post(ADD, {"name": "x", "scope": "operator", "lifetime_days": "30"})
    assert response.status_code == 200  # the form refuses the choice
    with pytest.raises(ValueError, match="beyond what this user may do"):
        api_token_create(owner=reader, name="x", scope="operator")
    assert ApiToken.objects.count() == 0


def test_solvers_see_and_revoke_only_their_own_tokens(db):
    operator, solver = make_user("op", "operator"), make_user("sol", "rw")
    theirs, _ = api_token_create(owner=operator, name="ops", scope="operator")
    mine, _ = api_token_create(owner=solver, name="mine", scope="resolve")
    client = browser(solver)
    assert [t.pk for t in client.get(CHANGELIST).context["cl"].result_list] == [mine.pk]
    client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [theirs.pk, mine.pk]})
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert (theirs.revoked_at, mine.revoked_at is not None) == (None, True)
    assert {t.pk for t in browser(operator).get(CHANGELIST).context["cl"].result_list} == {theirs.pk, mine.pk}


def _api(key: str, method: str, path: str):
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}").generic(method, f"/api{path}")


def test_expired_token_is_refused(node, fake_ln):
    token, key = api_token_create(owner=make_user("op", "operator"), name="old", scope="operator")
    assert _api(key, "GET", "/disputes").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    response = _api(key, "GET", "/disputes")
    assert (response.status_code, response.json()["code"]) == (401, "token_expired")


@pytest.mark.parametrize(
    ("scope", "resolve", "add_solver"), [("read", 403, 403), ("resolve", 200, 403), ("operator", 200, 200)]
)
def test_scope_narrows_what_an_operator_token_may_do(node, fake_ln, scope, resolve, add_solver):
    """The user is an operator; only the token's scope differs. A refused call changes nothing."""
    trade = disputed_trade(fake_ln)
    _, key = api_token_create(owner=make_user("op", "operator"), name=scope, scope=scope)
    solvers = Trader.objects.filter(is_solver=True).count()
    assert _api(key, "GET", f"/disputes/{trade.dispute.pk}").status_code == 200
    for step in ("take", "settle"):
        response = _api(key, "POST", f"/disputes/{trade.dispute.pk}/{step}")
        assert response.status_code == resolve
    dispute = Dispute.objects.get()
    if resolve == 403:
        assert response.json()["code"] == "token_scope"
        assert (dispute.status, DisputeLog.objects.filter(dispute=dispute).count()) == ("initiated", 1)
        assert fake_ln.invoices[trade.order.hold_invoice_hash].state is InvoiceState.ACCEPTED
    else:
        assert dispute.status == "settled"
    body = '{"pubkey": "' + "ab" * 32 + '", "permission": "read"}'
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post("/api/solvers", body, content_type="application/json")
    assert response.status_code == add_solver
    assert Trader.objects.filter(is_solver=True).count() == solvers + (add_solver == 200)


def test_migration_revokes_tokens_their_owner_did_not_create(db):
    """Tokens issued before scopes: kept only when the admin log shows the owner created them."""
    from importlib import import_module

    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType

    migration = import_module("mostro_site.migrations.0005_apitoken")
    owner, operator = make_user("owner"), make_user("op", "operator")
    own, _ = api_token_create(owner=owner, name="own")
    minted, _ = api_token_create(owner=owner, name="minted")
    content_type = ContentType.objects.get_for_model(ApiToken)
    for token, creator in ((own, owner), (minted, operator)):
        LogEntry.objects.create(
            user=creator, content_type=content_type, object_id=str(token.pk), object_repr=token.name, action_flag=1
        )
    migration.grandfather(apps, None)
    own.refresh_from_db()
    minted.refresh_from_db()
    assert (own.scope, own.revoked_at, minted.revoked_at is not None) == ("operator", None, True)
