"""One validation for the node settings, whatever writes them; the database as the backstop;
readers that survive whatever is stored."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from mostro_site.config import env_node_config, node_config
from mostro_site.models import NodeSettings, SettingsAuditEntry
from mostro_site.operator.services import node_settings_update
from nostrbridge import jobs
from nostrbridge.models import OutboundMessage, RelayHealth

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("_case", "values", "errors"),
    [
        ("fee", {"fee": 1.5}, {"fee": ["1.5 is outside 0–1: the fee is a fraction of the amount (0.006 = 0.6 %)."]}),
        (
            "routing fee",
            {"max_routing_fee": 50.0},
            {"max_routing_fee": ["50.0 is outside 0–1: a fraction of the payout (0.002 = 0.2 %)."]},
        ),
        ("pow", {"pow_bits": 255 + 1}, {"pow_bits": ["256 is outside 0–255 (leading zero bits of the event id)."]}),
        (
            "min > max",
            {"min_payment_amount_sats": 5000, "max_order_amount_sats": 1000},
            {
                "max_order_amount_sats": [
                    "minimum 5000 / maximum 1000 sats must satisfy 1 ≤ minimum ≤ maximum ≤ 2,100,000,000,000,000 "
                    "(all bitcoin)."
                ]
            },
        ),
        (
            "fiat",
            {"fiat_currencies_accepted": "XXX,lol"},
            {"fiat_currencies_accepted": ["'lol' is not a 3-letter ISO 4217 code."]},
        ),
        ("relays", {"relays": "nonsense"}, {"relays": ["'nonsense' is not a ws:// or wss:// URL."]}),
        (
            "price url",
            {"bitcoin_price_api_url": "file:///etc/passwd"},
            {"bitcoin_price_api_url": ["'file:///etc/passwd' is not an http:// or https:// URL."]},
        ),
        ("dev fee", {"dev_fee_percentage": 0.05}, {"dev_fee_percentage": ["5 % is outside 10–100 %."]}),
        (
            "protocol",
            {"protocol_version": 3},
            {"protocol_version": ["3 is unknown: 1 = NIP-59 gift wrap (kind 1059), 2 = NIP-44 kind 14."]},
        ),
    ],
)
def test_service_refuses_what_the_model_refuses_and_writes_nothing(_case, values, errors):
    """The path every writer takes (form, importer): full_clean before the save, human messages."""
    with pytest.raises(ValidationError) as refused:
        node_settings_update(user=None, values=values)
    assert refused.value.message_dict == errors
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


def test_accepted_write_is_normalised_and_audited():
    user = User.objects.create_user("olga")
    entries = node_settings_update(
        user=user, values={"relays": " wss://a.example ,\nws://127.0.0.1:7000 ", "fiat_currencies_accepted": "USD, VES"}
    )
    row = NodeSettings.objects.get()
    assert (row.relays, row.fiat_currencies_accepted) == ("wss://a.example,ws://127.0.0.1:7000", "USD,VES")
    assert [(e.user_id, e.field, e.before, e.after) for e in entries] == [
        (user.pk, "relays", "", "wss://a.example,ws://127.0.0.1:7000"),
        (user.pk, "fiat_currencies_accepted", "", "USD,VES"),
    ]
    assert SettingsAuditEntry.objects.count() == 2


@pytest.mark.parametrize(
    ("_case", "values", "constraint"),
    [
        ("fee", {"fee": 1.01}, "node_settings_fee_range"),
        ("routing fee", {"max_routing_fee": 50}, "node_settings_max_routing_fee_range"),
        ("routing fee < 0", {"max_routing_fee": -0.1}, "node_settings_max_routing_fee_range"),
        ("dev fee", {"dev_fee_percentage": 0.05}, "node_settings_dev_fee_range"),
        ("min", {"min_payment_amount_sats": 0}, "node_settings_min_payment_amount_sats_range"),
        ("max", {"max_order_amount_sats": 21 * 10**14 + 1}, "node_settings_max_order_amount_sats_range"),
        ("min > max", {"min_payment_amount_sats": 5000, "max_order_amount_sats": 1000}, "node_settings_amount_order"),
        ("hours", {"expiration_hours": 0}, "node_settings_expiration_hours_range"),
        ("seconds", {"expiration_seconds": 0}, "node_settings_expiration_seconds_range"),
        ("pow", {"pow_bits": 256}, "node_settings_pow_bits_range"),
        ("protocol", {"protocol_version": 3}, "node_settings_protocol_version"),
    ],
)
def test_database_refuses_every_numeric_bound(_case, values, constraint):
    """A writer that skips clean() (raw ORM update) still cannot store an out-of-range value."""
    NodeSettings.objects.create(pk=1)
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        NodeSettings.objects.filter(pk=1).update(**values)
    row = NodeSettings.objects.get()
    assert [getattr(row, name) for name in values] == [None] * len(values)


def test_constraint_messages_are_human():
    """full_clean with the constraints alone (the rules skipped) still speaks to a person."""
    row = NodeSettings(pk=1, max_routing_fee=50, min_payment_amount_sats=5000, max_order_amount_sats=1000)
    with pytest.raises(ValidationError) as refused:
        row.validate_constraints()
    assert sorted(refused.value.messages) == [
        "The max routing fee must be a fraction between 0 and 1.",
        "The minimum order must not exceed the maximum order.",
    ]


def test_readers_survive_unusable_lists_written_behind_the_model(settings, caplog):
    """Lists are not CHECKed by the database: readers drop what they cannot use."""
    NodeSettings.objects.create(pk=1)
    NodeSettings.objects.filter(pk=1).update(relays="nonsense,wss://ok.example", fiat_currencies_accepted="XXX,lol")
    config = node_config(fresh=True)
    assert (config.relays, config.fiat_currencies_accepted) == (("wss://ok.example",), ("XXX",))
    NodeSettings.objects.filter(pk=1).update(relays="nonsense", fiat_currencies_accepted="lol")
    config = node_config(fresh=True)
    env = env_node_config()
    assert (config.relays, config.fiat_currencies_accepted) == (env.relays, env.fiat_currencies_accepted)
    assert "node settings relays 'nonsense': unusable entries ignored" in caplog.text


def test_relay_list_job_skips_an_entry_that_is_not_a_relay(monkeypatch):
    RelayHealth.objects.create(relay_url="wss://ok.example", connected=True)
    monkeypatch.setattr(jobs, "node_config", lambda: type("C", (), {"relays": ("nonsense", "wss://ok.example")}))
    assert jobs.publish_relay_list() is True
    event = OutboundMessage.objects.get(kind=10002)
    assert '["r","wss://ok.example"]' in event.event_json.replace(" ", "")


def test_migration_resets_values_the_new_constraints_refuse():
    """A row an unchecked admin form wrote (min > max, routing fee 50) is reset, audited."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.apps import apps

    migration = import_module("mostro_site.migrations.0004_node_settings_bounds")
    fields = {f.attname: None for f in NodeSettings._meta.concrete_fields}
    fields.update(max_routing_fee=50.0, min_payment_amount_sats=5000, max_order_amount_sats=1000, fee=0.006)
    bad = SimpleNamespace(**fields)
    saved = []
    bad.save = lambda update_fields: saved.append(update_fields)
    fake_model = SimpleNamespace(objects=SimpleNamespace(filter=lambda **kw: SimpleNamespace(first=lambda: bad)))
    fake_apps = SimpleNamespace(
        get_model=lambda app, name: fake_model if name == "NodeSettings" else apps.get_model(app, name)
    )
    migration.reset_out_of_range(fake_apps, None)
    assert saved == [["max_order_amount_sats", "max_routing_fee", "min_payment_amount_sats"]]
    assert (bad.max_routing_fee, bad.min_payment_amount_sats, bad.max_order_amount_sats, bad.fee) == (
        None,
        None,
        None,
        0.006,
    )
    assert list(SettingsAuditEntry.objects.order_by("pk").values_list("user", "field", "before", "after")) == [
        (None, "max_order_amount_sats", "1000", ""),
        (None, "max_routing_fee", "50.0", ""),
        (None, "min_payment_amount_sats", "5000", ""),
    ]


def test_importer_refuses_the_issue_values_before_writing(tmp_path):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    toml = tmp_path / "settings.toml"
    toml.write_text(
        '[nostr]\nrelays = ["nonsense"]\n[mostro]\nmin_payment_amount = 5000\nmax_order_amount = 1000\n'
        'max_routing_fee = 50\nfiat_currencies_accepted = ["XXX", "lol"]\n'
    )
    with pytest.raises(CommandError) as refused:
        call_command("import_mostrod", "--toml", str(toml), stdout=io.StringIO())
    assert sorted(str(refused.value).splitlines()[1:]) == [
        "  fiat_currencies: Select a valid choice. LOL is not one of the available choices.",
        "  max_order_amount_sats: minimum 5000 / maximum 1000 sats must satisfy 1 ≤ minimum ≤ maximum ≤ "
        "2,100,000,000,000,000 (all bitcoin).",
        "  max_routing_fee: 50.0 is outside 0–1: a fraction of the payout (0.002 = 0.2 %).",
        "  relays: 'nonsense' is not a ws:// or wss:// URL.",
    ]
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)
