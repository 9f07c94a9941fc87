"""Trusted reputation issuers on /operator/settings/ (docs/PROTOCOL.md §Trust-list): the rules
as form errors (nothing saved), audit, the info event republished, and the boot checks."""

import html

import pytest
from django.contrib.auth.models import Group, User
from django.core.checks import Error

from mostro_site.checks import check_mostro_settings, check_reputation_trust_list
from mostro_site.models import ReputationImport, ReputationIssuer, ReputationIssuerKey, SettingsAuditEntry
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event

pytestmark = pytest.mark.django_db
URL = "/operator/settings/"
KEY_A = Keys.from_hex("61" * 32).public_key_hex
KEY_B = Keys.from_hex("62" * 32).public_key_hex
OWN = Keys.from_hex("63" * 32)


@pytest.fixture(autouse=True)
def reputation_env(settings):
    settings.MOSTRO_REPUTATION_IMPORT_ENABLED = True
    settings.MOSTRO_REPUTATION_EXPORT_ENABLED = True
    settings.MOSTRO_REPUTATION_ISSUER_SK = OWN.secret_hex


def post(client, **fields):
    return client.post(URL, {"form": "issuer", **fields})


def saved() -> list[tuple[str, list[str]]]:
    return [
        (issuer.name, sorted(key.pubkey for key in issuer.keys.all()))
        for issuer in ReputationIssuer.objects.prefetch_related("keys")
    ]


def imported(issuer_name: str, issuer_key: str, subject: str = "acct") -> None:
    ReputationImport.objects.create(
        attestation_id="a" * 64,
        issuer_name=issuer_name,
        issuer_key=issuer_key,
        subject=subject,
        identity_pubkey="b" * 64,
        trade_pubkey="c" * 64,
        reviews=5,
        rating_hundredths=450,
        since="2023-10-02T00:00:00Z",
        attested_at="2026-01-01T00:00:00Z",
    )


def test_an_operator_adds_an_issuer_audited_and_announced(
    operator_client, operator_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(operator_client, name="lnp2pbot", keys=f"{encode_npub(KEY_A)}\n{KEY_B.upper()}")
    assert response.status_code == 302
    assert saved() == [("lnp2pbot", sorted([KEY_A, KEY_B]))]
    entry = SettingsAuditEntry.objects.get()
    assert (entry.user, entry.field, entry.before) == (operator_user, "reputation issuer", "")
    assert entry.after == f"lnp2pbot: {', '.join(sorted([KEY_A, KEY_B]))}"
    info = Event.from_json(OutboundMessage.objects.filter(kind=38385).latest("pk").event_json)
    assert info.tags[-2:] == [
        ["reputation_issuer", OWN.public_key_hex],
        ["reputation_import_issuers", *sorted([KEY_A, KEY_B])],
    ]
    page = html.unescape(operator_client.get(URL).content.decode())
    assert encode_npub(KEY_A) in page
    assert encode_npub(OWN.public_key_hex) in page


@pytest.mark.parametrize(
    ("_case", "fields", "field", "message"),
    [
        ("no name", {"name": "", "keys": KEY_A}, "name", "This field is required"),
        ("padded name", {"name": " lnp2pbot", "keys": KEY_A}, "name", "No spaces at the start or the end"),
        ("no key", {"name": "x", "keys": " \n "}, "keys", "This field is required"),
        ("only separators", {"name": "x", "keys": ",\n,"}, "keys", "Give at least one key"),
        ("bad key", {"name": "x", "keys": "npub1nope"}, "keys", "'npub1nope' is not"),
        ("off the curve", {"name": "x", "keys": "ff" * 32}, "keys", "not a valid x coordinate on secp256k1"),
        ("the node's key", {"name": "x", "keys": "NODE"}, "keys", "is this node's own key"),
        ("the issuer key", {"name": "x", "keys": OWN.public_key_hex}, "keys", "a node never trusts itself"),
    ],
)
def test_each_rule_is_a_form_error_and_nothing_is_saved(operator_client, _case, fields, field, message):
    fields = {**fields, "keys": fields["keys"].replace("NODE", node_pubkey())}
    response = post(operator_client, **fields)
    assert response.status_code == 200
    errors = response.context["issuer_form"].errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert message in html.unescape(response.content.decode())
    assert (saved(), SettingsAuditEntry.objects.count()) == ([], 0)


def test_a_key_belongs_to_one_issuer_and_names_are_unique(operator_client):
    post(operator_client, name="lnp2pbot", keys=KEY_A)
    response = post(operator_client, name="other", keys=f"{KEY_B}\n{KEY_A}")
    assert f"{KEY_A} already belongs to issuer “lnp2pbot”." in response.context["issuer_form"].errors["keys"]
    response = post(operator_client, name="lnp2pbot", keys=KEY_B)
    assert response.context["issuer_form"].errors["name"] == ["Another issuer is already called “lnp2pbot”."]
    assert saved() == [("lnp2pbot", [KEY_A])]


def test_deduplication_cannot_be_reset_by_renaming_or_moving_a_key(operator_client):
    post(operator_client, name="lnp2pbot", keys=KEY_A)
    issuer = ReputationIssuer.objects.get()
    imported("lnp2pbot", KEY_A)
    response = post(operator_client, issuer_id=issuer.pk, name="bot", keys=KEY_A)
    assert "renamed, those accounts could import again" in response.context["issuer_form"].errors["name"][0]
    # Moving the key to a new entry (after removing it from the old one) is refused too.
    post(operator_client, issuer_id=issuer.pk, name="lnp2pbot", keys=KEY_B)
    response = post(operator_client, name="bot", keys=KEY_A)
    assert "has imports recorded under “lnp2pbot”" in response.context["issuer_form"].errors["keys"][0]
    assert saved() == [("lnp2pbot", [KEY_B])]


def test_an_operator_edits_and_removes_an_issuer(operator_client, django_capture_on_commit_callbacks):
    post(operator_client, name="lnp2pbot", keys=KEY_A)
    issuer = ReputationIssuer.objects.get()
    edit = operator_client.get(f"{URL}?issuer={issuer.pk}")
    assert edit.context["issuer_form"].initial == {"issuer_id": issuer.pk, "name": "lnp2pbot", "keys": KEY_A}
    assert post(operator_client, issuer_id=issuer.pk, name="lnp2pbot-v2", keys=f"{KEY_A}\n{KEY_B}").status_code == 302
    assert saved() == [("lnp2pbot-v2", sorted([KEY_A, KEY_B]))]
    imported("lnp2pbot-v2", KEY_A)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(operator_client, delete=str(issuer.pk)).status_code == 302
    assert (saved(), ReputationIssuerKey.objects.count(), ReputationImport.objects.count()) == ([], 0, 1)
    info = Event.from_json(OutboundMessage.objects.filter(kind=38385).latest("pk").event_json)
    assert info.tags[-1] == ["reputation_import_issuers"]  # import on, nobody trusted
    assert [(e.before, e.after) for e in SettingsAuditEntry.objects.order_by("pk")][-1] == (
        f"lnp2pbot-v2: {', '.join(sorted([KEY_A, KEY_B]))}",
        "",
    )


def test_solvers_cannot_change_the_trust_list(client):
    solver = User.objects.create_user("sol", password="pw", is_staff=True)
    solver.groups.add(Group.objects.get_or_create(name="solver read-write")[0])
    client.force_login(solver)
    assert post(client, name="lnp2pbot", keys=KEY_A).status_code == 403
    assert saved() == []


# --- boot checks (§Reputation, §Trust-list) -------------------------------------------------------------------------
def ids(problems) -> list[str]:
    return sorted(problem.id for problem in problems if isinstance(problem, Error))


@pytest.mark.parametrize(
    ("_case", "overrides", "expected"),
    [
        ("valid", {}, []),
        ("import lifetime zero", {"MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS": 0}, ["mostro.E018"]),
        ("import lifetime over 30 days", {"MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS": 2_592_001}, ["mostro.E018"]),
        ("export lifetime over 7 days", {"MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS": 604_801}, ["mostro.E018"]),
        ("export without a key", {"MOSTRO_REPUTATION_ISSUER_SK": ""}, ["mostro.E018"]),
        ("a key that does not load", {"MOSTRO_REPUTATION_ISSUER_SK": "nsec1qqqq"}, ["mostro.E018"]),
        ("the node's key", {"MOSTRO_REPUTATION_ISSUER_SK": "NODE"}, ["mostro.E018"]),
        ("export off, no key", {"MOSTRO_REPUTATION_EXPORT_ENABLED": False, "MOSTRO_REPUTATION_ISSUER_SK": ""}, []),
    ],
)  # fmt: skip
def test_environment_rules_refuse_to_start(settings, _case, overrides, expected):
    for name, value in overrides.items():
        setattr(settings, name, settings.MOSTRO_NSEC_PRIVKEY if value == "NODE" else value)
    assert ids(check_mostro_settings()) == expected


def test_the_trust_list_is_checked_at_boot_against_the_database():
    own = ReputationIssuer.objects.create(name="myself")
    ReputationIssuerKey.objects.create(pubkey=OWN.public_key_hex, issuer=own)
    moved = ReputationIssuer.objects.create(name="renamed")
    ReputationIssuerKey.objects.create(pubkey=KEY_A, issuer=moved)
    imported("original", KEY_A)
    assert check_reputation_trust_list(databases=None) == []  # only when the database is asked for
    problems = check_reputation_trust_list(databases=["default"])
    assert ids(problems) == ["mostro.E019", "mostro.E019"]
    assert "Trusted issuer “myself”" in problems[0].msg
    assert "has imports recorded under “original”" in problems[1].msg


@pytest.mark.parametrize(
    ("export", "key", "import_", "expected"),
    [
        (True, True, True, (OWN.public_key_hex, (KEY_A,))),
        (True, False, True, (None, (KEY_A,))),  # export on, no loadable key: nothing advertised
        (False, True, False, (None, None)),
        (False, False, True, (None, (KEY_A,))),
    ],
)
def test_the_info_event_advertises_only_what_works(settings, export, key, import_, expected):
    from mostro_site.config import node_config
    from nostrbridge.node_announcements import node_info

    ReputationIssuerKey.objects.create(pubkey=KEY_A, issuer=ReputationIssuer.objects.create(name="lnp2pbot"))
    settings.MOSTRO_REPUTATION_EXPORT_ENABLED = export
    settings.MOSTRO_REPUTATION_ISSUER_SK = OWN.secret_hex if key else ""
    settings.MOSTRO_REPUTATION_IMPORT_ENABLED = import_
    info = node_info(node_config(), None)
    assert (info.reputation_issuer, info.reputation_import_issuers) == expected
