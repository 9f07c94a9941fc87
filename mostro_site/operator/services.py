"""Saving the node settings (the row, one audit entry per changed field, one transaction) and the
trusted reputation issuers."""

from django.core.exceptions import ValidationError
from django.db import transaction

from mostro_site.config import clear_node_config_cache
from mostro_site.models import NodeSettings, ReputationIssuer, ReputationIssuerKey, SettingsAuditEntry
from nostrbridge.node_announcements import info_event_enqueue, lnd_status, metadata_enqueue
from orders.services.reputation_issuers import issuer_entry_errors, parse_key_texts

INFO_REPEAT_GUARD_SECONDS = 60


def audit_text(field: str, value: object) -> str:
    """How a value reads in the audit log; blank means "environment default"."""
    if value is None:
        return ""
    if field == "fiat_currencies_accepted" and value == "":
        return "(all currencies)"
    return str(value)


@transaction.atomic(durable=True)
def node_settings_update(*, user, values: dict[str, object]) -> list[SettingsAuditEntry]:
    """Apply `values` (NodeSettings field -> value) and audit every field that changed.

    Every write path (the settings form, the importer) comes here, and the row is checked with
    `full_clean` before it is saved: a value the model's rules refuse raises ValidationError
    (field -> human messages) and nothing is written. The row is locked so two operators saving
    at once cannot lose each other's change (PostgreSQL; SQLite's IMMEDIATE transactions
    serialise writers anyway). The config cache is cleared after commit, and a fresh info event
    is queued when the bridge offers one.
    """
    row, _ = NodeSettings.objects.select_for_update().get_or_create(pk=1)
    before = {field: getattr(row, field) for field in values}
    for field, after in values.items():
        setattr(row, field, after)
    row.full_clean()  # normalises blanks and lists, then the rules; raises before any write
    entries = [
        SettingsAuditEntry(user=user, field=field, before=audit_text(field, old), after=audit_text(field, new))
        for field, old in before.items()
        if old != (new := getattr(row, field))
    ]
    if not entries:
        return []
    row.save()
    SettingsAuditEntry.objects.bulk_create(entries)
    transaction.on_commit(clear_node_config_cache)
    transaction.on_commit(publish_node_info, robust=True)
    return entries


def publish_node_info() -> None:
    """Queue fresh kind-38385 info and kind-0 profile events (after commit, outside any transaction).

    Changed tags are published at once whatever the interval; identical ones are not repeated.
    """
    lnd = lnd_status()  # a network call: this runs after commit, never inside a transaction
    info_event_enqueue(lnd=lnd, min_interval_s=INFO_REPEAT_GUARD_SECONDS)
    metadata_enqueue(min_interval_s=INFO_REPEAT_GUARD_SECONDS)


@transaction.atomic(durable=True)
def reputation_issuer_save(
    *, user, instance: ReputationIssuer | None, name: str, key_texts: list[str]
) -> ReputationIssuer:
    """Create or update a trusted issuer (name and keys), audited; ValidationError if it breaks a
    rule (`issuer_entry_errors`, checked again here under the row lock)."""
    if instance is not None:
        instance = ReputationIssuer.objects.select_for_update().get(pk=instance.pk)
    errors = issuer_entry_errors(name=name, keys=key_texts, instance=instance)
    if errors:
        raise ValidationError(errors)
    keys, _ = parse_key_texts(key_texts)
    before = "" if instance is None else _issuer_text(instance.name, _keys_of(instance))
    issuer = instance or ReputationIssuer(name=name)
    issuer.name = name
    issuer.save()
    ReputationIssuerKey.objects.filter(issuer=issuer).exclude(pubkey__in=keys).delete()
    for key in keys:
        ReputationIssuerKey.objects.get_or_create(pubkey=key, defaults={"issuer": issuer})
    after = _issuer_text(name, keys)
    if before != after:
        SettingsAuditEntry.objects.create(user=user, field="reputation issuer", before=before, after=after)
        transaction.on_commit(publish_node_info, robust=True)
    return issuer


@transaction.atomic(durable=True)
def reputation_issuer_delete(*, user, issuer_id: int) -> str | None:
    """Remove a trusted issuer; its imports stay recorded (re-adding the name keeps them deduplicated)."""
    issuer = ReputationIssuer.objects.select_for_update().filter(pk=issuer_id).first()
    if issuer is None:
        return None
    before = _issuer_text(issuer.name, _keys_of(issuer))
    issuer.delete()
    SettingsAuditEntry.objects.create(user=user, field="reputation issuer", before=before, after="")
    transaction.on_commit(publish_node_info, robust=True)
    return issuer.name


def _keys_of(issuer: ReputationIssuer) -> list[str]:
    return list(issuer.keys.order_by("pubkey").values_list("pubkey", flat=True))


def _issuer_text(name: str, keys: list[str]) -> str:
    return f"{name}: {', '.join(sorted(keys))}"
