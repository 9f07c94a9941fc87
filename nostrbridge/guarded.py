"""Guarded UPDATEs, locked reads and existence checks in plain SQL, for the trade steps' writes.

Every trade step runs a locked re-read of its order and a conditional UPDATE (`WHERE status =
<seen> AND <guard>`), and the ORM compiled both on every call (a tenth of mostrod's CPU per trade,
docs/PERFORMANCE.md). These helpers write the same statements once per shape: the WHERE names
every column qualified by its table, as Django's compiler does (tests/wiring/test_locks.py reads
that shape on PostgreSQL), and the locked read ends in `FOR UPDATE` wherever the database has it
(SQLite serialises writers with IMMEDIATE transactions instead, as the ORM's
`select_for_update()` leaves it).

A guard is a `Q` of AND-ed lookups `exact`, `isnull`, `lt`, `lte`, `gt`, `gte` and `in` (a list)
on the model's own columns with plain values; anything else — a negation, an OR, a related
field, an expression, a subquery — runs through the ORM unchanged. Values are converted with
each field's own `get_db_prep_*`, so the statements match what the ORM sends. Like
`nostrbridge.statements`, these bypass `save()` and signals: `QuerySet.update()` does too.
"""

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models import Q
from django.db.transaction import TransactionManagementError

from nostrbridge.statement_sql import returned_columns, table_name
from nostrbridge.statements import (
    db_connection,
    loaded_rows,
    prep_lookup,
    prep_value,
    run_statement,
    select_rows,
)

ModelT = TypeVar("ModelT", bound=models.Model)

# Lookup name → SQL operator ("in" takes a list; "isnull" a bool).
_OPERATORS = {"exact": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "IN", "isnull": "IS NULL"}

# One condition: (field, lookup, value).
Condition = tuple[models.Field, str, Any]


def update_guarded(model: type[models.Model], *, where: dict[str, Any], guard: Q | None, values: dict[str, Any]) -> int:
    """`model.objects.filter(**where).filter(guard).update(**values)`, the row count it returns."""
    return _update(model, where, guard, values, returning=False)[0]


def update_guarded_returning(
    model: type[ModelT], *, where: dict[str, Any], guard: Q | None, values: dict[str, Any]
) -> tuple[int, list[ModelT] | None]:
    """`update_guarded`'s row count, and the changed rows as they stand after the UPDATE (the
    instances a read right after it would load), returned by the UPDATE itself (`RETURNING`,
    SQLite ≥ 3.35 and PostgreSQL): one statement instead of two. The rows are None when the ORM
    ran the UPDATE (a guard the plain statement does not express): the caller reads them."""
    return _update(model, where, guard, values, returning=True)


def _update(
    model: type[ModelT], where: dict[str, Any], guard: Q | None, values: dict[str, Any], *, returning: bool
) -> tuple[int, list[ModelT] | None]:
    conditions = _conditions(model, where, guard)
    set_fields = _set_fields(model, values)
    if conditions is None or set_fields is None:
        query = model._default_manager.filter(**where)
        if guard is not None:
            query = query.filter(guard)
        return query.update(**values), None
    if any(lookup == "in" and not value for _, lookup, value in conditions):
        # An empty IN list matches nothing (the ORM does not run the query either).
        return 0, ([] if returning else None)
    sql = _update_sql(model, tuple(set_fields), _shape(conditions))
    db = db_connection()
    params = [prep_value(field, values[name], db) for name, field in set_fields.items()]
    params += _where_params(conditions, db)
    if returning:
        rows = loaded_rows(
            model, db, run_statement(db, f"{sql} RETURNING {returned_columns(model)}", params, fetch=True)
        )
        return len(rows), rows
    return int(run_statement(db, sql, params)), None


def select_locked(model: type[ModelT], *, pk: Any) -> ModelT | None:
    """`model.objects.select_for_update().filter(pk=pk).first()`: the row, locked until the end of
    the transaction where the database locks rows. Must run inside `transaction.atomic()`."""
    _require_atomic()
    rows = select_rows(model, where=_locked_where(model), params=[prep_lookup(model._meta.pk, pk, db_connection())])
    return rows[0] if rows else None


def select_locked_column(model: type[models.Model], *, pk: Any, column: str) -> Any:
    """`model.objects.select_for_update().filter(pk=pk).values_list(column, flat=True).first()`,
    for a text or integer column (returned as the driver gives it). Must run inside an atomic block."""
    row = select_locked_columns(model, pk=pk, columns=(column,))
    return row[0] if row else None


def select_locked_columns(model: type[models.Model], *, pk: Any, columns: tuple[str, ...]) -> tuple[Any, ...] | None:
    """`select_locked_column` for several columns: their values as the driver gives them (a
    datetime may be text on SQLite), or None when the row is gone. For a caller that needs a
    few columns of a wide row under the lock, not a model instance of every column."""
    _require_atomic()
    db = db_connection()
    sql = _locked_columns_sql(model, columns)
    rows = run_statement(db, sql, [prep_lookup(model._meta.pk, pk, db)], fetch=True)
    return tuple(rows[0]) if rows else None


def exists_where(model: type[models.Model], *, where: dict[str, Any]) -> bool:
    """`model.objects.filter(**where).exists()` for equality and IN-list lookups on own columns."""
    conditions = _conditions(model, where, None)
    if conditions is None:
        return model._default_manager.filter(**where).exists()
    if any(lookup == "in" and not value for _, lookup, value in conditions):
        return False
    db = db_connection()
    return bool(run_statement(db, _exists_sql(model, _shape(conditions)), _where_params(conditions, db), fetch=True))


def _shape(conditions: Sequence[Condition]) -> tuple[tuple[str, str, Any], ...]:
    """The statement's shape, the key of its cached SQL: per condition the column's attname (a
    str hashes once; a Field's hash is a Python method), the lookup, an IN list's length and
    an isnull's bool."""
    return tuple(
        (field.attname, lookup, len(value) if lookup == "in" else value if lookup == "isnull" else None)
        for field, lookup, value in conditions
    )


def _conditions(model: type[models.Model], where: dict[str, Any], guard: Q | None) -> list[Condition] | None:
    """The AND-ed conditions of `where` and `guard`, or None when the ORM must compile them."""
    found: list[Condition] = []
    for key, value in where.items():
        condition = _condition(model, key, value)
        if condition is None:
            return None
        found.append(condition)
    if guard is not None and not _flatten(model, guard, found):
        return None
    return found


def _flatten(model: type[models.Model], q: Q, found: list[Condition]) -> bool:
    if q.negated or (q.connector != Q.AND and len(q.children) > 1):
        return False
    for child in q.children:
        if isinstance(child, Q):
            if not _flatten(model, child, found):
                return False
            continue
        if not isinstance(child, tuple) or len(child) != 2:
            return False
        condition = _condition(model, *child)
        if condition is None:
            return False
        found.append(condition)
    return True


def _condition(model: type[models.Model], key: str, value: Any) -> Condition | None:
    name, _, lookup = key.partition("__")
    lookup = lookup or "exact"
    field = _own_field(model, name)
    if field is None or lookup not in _OPERATORS or _is_expression(value):
        return None
    if lookup == "exact" and value is None:
        return field, "isnull", True  # what the ORM makes of `field=None`
    if lookup == "isnull":
        return (field, lookup, value) if type(value) is bool else None
    if lookup == "in":
        if not isinstance(value, (list, tuple, set, frozenset)) or any(_is_expression(item) for item in value):
            return None
        return field, lookup, list(value)
    return (field, lookup, value) if value is not None else None


def _is_expression(value: Any) -> bool:
    return hasattr(value, "resolve_expression") or isinstance(value, models.Model)


def _set_fields(model: type[models.Model], values: dict[str, Any]) -> dict[str, models.Field] | None:
    fields: dict[str, models.Field] = {}
    for name, value in values.items():
        field = _own_field(model, name)
        if field is None or _is_expression(value):
            return None
        fields[name] = field
    return fields


@functools.cache
def _own_field(model: type[models.Model], name: str) -> models.Field | None:
    """The concrete column a filter or update name designates (`pk`, a field name or an attname)."""
    meta = model._meta
    if name == "pk":
        return meta.pk
    for field in meta.concrete_fields:
        if name in (field.name, field.attname):
            return field
    return None


def _where_params(conditions: Sequence[Condition], db: Any) -> list[Any]:
    params: list[Any] = []
    for field, lookup, value in conditions:
        if lookup == "isnull":
            continue
        if lookup == "in":
            params += [prep_lookup(field, item, db) for item in value]
        else:
            params.append(prep_lookup(field, value, db))
    return params


def _qualified(model: type[models.Model], field: models.Field) -> str:
    quote = connection.ops.quote_name
    assert field.column is not None, field
    return f"{table_name(model)}.{quote(field.column)}"


def _where_sql(model: type[models.Model], shape: tuple[tuple[str, str, Any], ...]) -> str:
    parts = []
    for attname, lookup, extra in shape:
        field = _own_field(model, attname)
        assert field is not None, attname
        column = _qualified(model, field)
        if lookup == "isnull":
            parts.append(f"{column} IS NULL" if extra else f"{column} IS NOT NULL")
        elif lookup == "in":
            parts.append(f"{column} IN ({', '.join(['%s'] * extra)})")
        else:
            parts.append(f"{column} {_OPERATORS[lookup]} %s")
    return " AND ".join(parts)


@functools.cache
def _update_sql(model: type[models.Model], set_names: tuple[str, ...], shape: tuple[Any, ...]) -> str:
    quote = connection.ops.quote_name
    assignments = []
    for name in set_names:
        field = _own_field(model, name)
        assert field is not None, name
        assert field.column is not None, name
        assignments.append(f"{quote(field.column)} = %s")
    return f"UPDATE {table_name(model)} SET {', '.join(assignments)} WHERE {_where_sql(model, shape)}"


@functools.cache
def _exists_sql(model: type[models.Model], shape: tuple[Any, ...]) -> str:
    return f"SELECT 1 FROM {table_name(model)} WHERE {_where_sql(model, shape)} LIMIT 1"


def _require_atomic() -> None:
    # The ORM refuses a locking read in autocommit (the lock would end with the statement).
    if not db_connection().in_atomic_block:
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")


def _lock_suffix() -> str:
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


@functools.cache
def _locked_where(model: type[models.Model]) -> str:
    return f"{_qualified(model, model._meta.pk)} = %s{_lock_suffix()}"


@functools.cache
def _locked_columns_sql(model: type[models.Model], columns: tuple[str, ...]) -> str:
    selected = []
    for column in columns:
        field = _own_field(model, column)
        assert field is not None, column
        selected.append(_qualified(model, field))
    return (
        f"SELECT {', '.join(selected)} FROM {table_name(model)}"
        f" WHERE {_qualified(model, model._meta.pk)} = %s{_lock_suffix()}"
    )
