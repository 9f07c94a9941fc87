"""Idempotent upsert by primary key, with a per-table report of what would change.

Rows are compared field by field with what this node already holds: equal → unchanged,
different → updated, absent → new. Writes happen in batches, one transaction per batch, so
a failure leaves whole batches applied and a rerun finishes the job.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models, transaction

BATCH_SIZE = 500  # rows per transaction: bounded lock time on SQLite, few round trips


@dataclass
class TableReport:
    table: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    notes: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def lines(self) -> list[str]:
        head = (
            f"{self.table}: {self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.skipped_total} skipped"
        )
        reasons = [f"    skipped {count}: {reason}" for reason, count in sorted(self.skipped.items())]
        return [head, *reasons, *(f"    note: {note}" for note in self.notes)]


@dataclass(frozen=True)
class Target:
    model: type[models.Model]
    key: str = "pk"  # the lookup field that identifies a row ("pk", or e.g. "order_id")
    # Fields Django fills on insert (auto_now_add) that must keep the imported value.
    keep_on_insert: tuple[str, ...] = ()
    # Ledger rows: an existing row that differs is reported, never rewritten.
    never_update: bool = False


def _same(current, wanted) -> bool:
    if current is None or wanted is None:
        return current is wanted
    return str(current) == str(wanted) if not isinstance(wanted, float | bool | int) else current == wanted


def _diff(instance: models.Model, fields: dict) -> dict:
    return {name: value for name, value in fields.items() if not _same(getattr(instance, name), value)}


def upsert(target: Target, rows: Iterable[tuple[object, dict]], report: TableReport, *, dry_run: bool) -> None:
    batch: list[tuple[object, dict]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_SIZE:
            _apply_batch(target, batch, report, dry_run=dry_run)
            batch = []
    if batch:
        _apply_batch(target, batch, report, dry_run=dry_run)


def _apply_batch(target: Target, batch: list[tuple[object, dict]], report: TableReport, *, dry_run: bool) -> None:
    manager = target.model._default_manager
    keys = [key for key, _ in batch]
    existing = {getattr(obj, _attname(target)): obj for obj in manager.filter(**{f"{target.key}__in": keys})}
    to_create, to_update = [], []
    for key, fields in batch:
        current = existing.get(_normal(key, existing))
        if current is None:
            to_create.append(target.model(**{target.key: key}, **fields))
            continue
        changed = _diff(current, fields)
        if not changed:
            report.unchanged += 1
        elif target.never_update:
            report.skipped["already recorded here with different data (ledger rows are never rewritten)"] += 1
        else:
            to_update.append((current.pk, changed))
    report.new += len(to_create)
    report.updated += len(to_update)
    if not dry_run:
        _write(target, to_create, to_update)


def _write(target: Target, to_create: list[models.Model], to_update: list[tuple[object, dict]]) -> None:
    manager = target.model._default_manager
    with transaction.atomic():
        if to_create:
            wanted = [{name: getattr(obj, name) for name in target.keep_on_insert} for obj in to_create]
            created = manager.bulk_create(to_create)
            if target.keep_on_insert:
                # bulk_create let auto_now_add overwrite these; put the imported values back.
                for obj, values in zip(created, wanted, strict=True):
                    for name, value in values.items():
                        setattr(obj, name, value)
                manager.bulk_update(created, list(target.keep_on_insert))
        for pk, changed in to_update:
            manager.filter(pk=pk).update(**changed)


def _attname(target: Target) -> str:
    return "pk" if target.key == "pk" else target.key


def _normal(key, existing: dict):
    """Match keys of any type (UUID vs str) against the existing rows' keys."""
    if key in existing:
        return key
    return next((k for k in existing if str(k) == str(key)), key)
