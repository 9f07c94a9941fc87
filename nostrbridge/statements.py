"""Plain INSERT and UPDATE statements for the relay bridge's per-message hot path.

Why not the ORM here: every inbound message is stored, claimed, answered with an outbox row,
marked done, and its reply claimed and recorded by the publisher. Building and compiling those
statements through the ORM cost several times what the database needs to run them (about half of
the bridge's CPU per message, see docs/PERFORMANCE.md). These helpers build each statement's SQL
once per shape from the model's own metadata (table and column names, field defaults,
`auto_now` / `auto_now_add`) and convert every value with the field's own `get_db_prep_*`, so they
store what `Model.objects.create()` / `QuerySet.update()` would, on SQLite and PostgreSQL alike
(Django's cursor takes `%s` placeholders on both, and both speak `ON CONFLICT`).

They bypass model signals and `save()`; use them only for models that have neither (the inbox
and outbox tables). Everything else stays on the ORM.

`select_rows` is the read side, for a hot lookup whose filter the ORM would compile on every call
(the `orders` action): a plain SELECT of every column, turned into model instances with the
converters Django's compiler would pick, prepared once per model instead of once per query.
"""

import datetime
import functools
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from nostrbridge.rows import instances_from_rows, plain_type, quicker_prep
from nostrbridge.statement_sql import (
    clock_statement,
    column_of,
    field_of,
    insert_sql,
    instance_statement,
    row_shape,
    select_statement,
    update_statement,
    where_equal,
)
from nostrbridge.thread_connection import db_connection

ModelT = TypeVar("ModelT", bound=models.Model)


def insert_row(model: type[models.Model], **values: Any) -> None:
    """INSERT one row: the given values by attname, every other column its field default."""
    insert_rows(model, [values])


def insert_row_pk(model: type[models.Model], **values: Any) -> Any:
    """`insert_row`, returning the new row's primary key (the same statement, with RETURNING)."""
    returned = insert_rows(model, [values], returning=True)
    return returned[0][0]


def insert_rows(
    model: type[models.Model],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] = (),
    update: Sequence[str] = (),
    returning: bool | Sequence[str] = False,
) -> Any:
    """INSERT rows in one statement. With `conflict` (the unique columns): skip rows that already
    exist, or with `update` overwrite those columns (plus any `auto_now` column) from the new row.
    Returns the driver's row count: with `conflict` and no `update`, the rows actually inserted;
    with `returning`, the inserted rows' primary keys instead, as rows (`RETURNING <pk>`), or
    with attnames for `returning`, those columns (in any row order: the driver's)."""
    db = db_connection()
    if not rows:
        return 0
    names = () if not returning else (model._meta.pk.attname,) if returning is True else tuple(returning)
    sql = insert_sql(model, tuple(conflict), tuple(update), len(rows), names)
    now = None  # one `now` for every timestamp of the statement, converted once per column
    stamped: dict[int, Any] = {}  # keyed by the column's position (a Field's own hash is a Python method)
    last_prep: dict[int, tuple[Any, Any]] = {}  # per column: the last value prepared, and its result
    params: list[Any] = []
    for values in rows:
        defaults, given, computed = row_shape(model, db, tuple(values))
        row = defaults.copy()  # every column not given holds its (constant) default already
        for position, attname, field, plain in given:
            value = values[attname]
            # The common cases (a str for a text column, an int for an integer one, NULL) need
            # no conversion; the field's own get_db_prep_save does the rest, once for a value
            # object every row shares (the publisher's lease of a batch's replies).
            if value is None or type(value) is plain or (plain is str and isinstance(value, str)):
                row[position] = value
                continue
            shared = last_prep.get(position)
            if shared is None or shared[0] is not value:
                shared = last_prep[position] = (value, prep_value(field, value, db))
            row[position] = shared[1]
        for position, field, stamp in computed:
            if not stamp:  # a callable default, computed anew for every row
                row[position] = field.get_db_prep_save(field.get_default(), db)
                continue
            if position not in stamped:
                if now is None:
                    now = timezone.now()
                stamped[position] = prep_value(field, now, db)
            row[position] = stamped[position]
        params += row
    if returning:
        return run_statement(db, sql, params, fetch=True)
    return int(run_statement(db, sql, params))


def insert_instance(obj: ModelT) -> ModelT:
    """INSERT a new, unsaved instance as `Model.objects.create()` / `save(force_insert=True)` would:
    every column from the instance (its defaults applied by its constructor, `auto_now` and
    `auto_now_add` stamped on it), an auto-increment key read back with RETURNING. No `save()`
    override or signal runs: use it only for models that have neither."""
    db = db_connection()
    model = type(obj)
    sql, fields, auto_pk = instance_statement(model)
    params = [prep_value(field, field.pre_save(obj, True), db) for field in fields]
    returned = run_statement(db, sql, params, fetch=auto_pk is not None)
    if auto_pk is not None:
        ((value,),) = returned
        setattr(obj, auto_pk.attname, value)
    obj._state.adding = False
    obj._state.db = db.alias
    return obj


def update_where(
    model: type[models.Model], *, where: dict[str, Any], values: dict[str, Any], increments: Iterable[str] = ()
) -> int:
    """UPDATE … SET values (and column = column + 1 for each of `increments`) WHERE each `where`
    column equals its value — or, for a list value, is one of its items; return the row count.

    `where` values must not be None (equality only); `values` may set NULL.
    """
    db = db_connection()
    where_names = tuple((name, isinstance(value, (list, tuple))) for name, value in where.items())
    sql, set_fields, where_fields = update_statement(model, tuple(values), tuple(increments), where_names)
    params = [prep_value(field, values[field.attname], db) for field in set_fields]
    in_lists = []
    for field, is_list in zip(where_fields, (is_list for _, is_list in where_names), strict=True):
        value = where[field.attname]
        if is_list:
            if not value:
                return 0
            params += [prep_lookup(field, item, db) for item in value]
            in_lists.append(", ".join(["%s"] * len(value)))
        else:
            params.append(prep_lookup(field, value, db))
    # (Without an IN list the statement has no braces to fill: str.format would copy it.)
    return int(run_statement(db, sql.format(*in_lists) if in_lists else sql, params))


def advance_clock(model: type[models.Model], *, key: dict[str, Any], column: str, floor: int) -> int:
    """Set the integer `column` of the row identified by `key` (its unique columns) to
    max(floor, current + 1), creating the row with `floor` if there is none; return the new value.

    One `INSERT … ON CONFLICT DO UPDATE … RETURNING` (SQLite ≥ 3.35 and PostgreSQL): the
    conflicting row is locked by the statement itself, so concurrent callers get distinct values.
    The model's other columns must have defaults.
    """
    db = db_connection()
    sql, key_fields = clock_statement(model, tuple(key), column)
    params = [field.get_db_prep_value(key[field.attname], db) for field in key_fields]
    ((value,),) = run_statement(db, sql, [*params, floor], fetch=True)
    return int(value)


def select_rows(model: type[ModelT], *, where: str, params: Sequence[Any]) -> list[ModelT]:
    """`SELECT <every concrete column> FROM <table> WHERE <where>` as model instances, the ones
    `model.objects.filter(…)` would load. `where` is SQL with `%s` placeholders for `params`
    (an ORDER BY may follow the condition); quote identifiers with `connection.ops.quote_name`."""
    db = db_connection()
    head = select_statement(model)[0]
    return loaded_rows(model, db, run_statement(db, f"{head} WHERE {where}", params, fetch=True))


def loaded_rows(model: type[ModelT], db: Any, rows: Sequence[Sequence[Any]]) -> list[ModelT]:
    """The driver's rows of every concrete column, in field order (a `select_rows` SELECT or a
    `RETURNING` of `returned_columns(model)`), as the model instances the ORM would load."""
    _, attnames, converters = select_statement(model)
    converted = []
    for row in rows:
        values = list(row)
        for index, column_converters, expression in converters:
            for convert in column_converters:
                values[index] = convert(values[index], expression, db)
        converted.append(values)
    return instances_from_rows(model, db.alias, attnames, converted)


def select_where(model: type[ModelT], *, where: dict[str, Any]) -> list[ModelT]:
    """Rows whose columns (by attname) equal each value, or for a list value are one of its items,
    in pk order: what `filter(name=…, other__in=[…]).order_by("pk")` loads. Values must not be None."""
    db = db_connection()
    quote = db.ops.quote_name
    conditions: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        field = field_of(model._meta, name)
        column = quote(column_of(field))
        if isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                return []
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [prep_lookup(field, item, db) for item in value]
        else:
            conditions.append(f"{column} = %s")
            params.append(prep_lookup(field, value, db))
    order = quote(column_of(model._meta.pk))
    return select_rows(model, where=f"{' AND '.join(conditions)} ORDER BY {order}", params=params)


def select_one(model: type[ModelT], **equals: Any) -> ModelT | None:
    """The row whose columns (by attname) equal the given values, or None: for a lookup by a
    unique key, what `model.objects.filter(**equals).first()` loads. A None value matches nothing
    (SQL equality), as the unique lookups that use this want."""
    db = db_connection()
    if any(value is None for value in equals.values()):
        return None
    where, fields = where_equal(model, tuple(equals))
    params = [prep_lookup(field, equals[field.attname], db) for field in fields]
    rows = select_rows(model, where=where, params=params)
    return rows[0] if rows else None


def run_statement(db: Any, sql: str, params: Sequence[Any], *, fetch: bool = False) -> Any:
    """Run one statement on `db` (a connection, `db_connection()`); return its rows (`fetch`, every
    row: the statement runs to its end) or else the driver's row count.

    On SQLite, while nothing observes queries (see `execute_statement`), on the connection's own
    driver cursor, kept for as long as the connection is open: `db.cursor()` costs more than a
    short statement (the async-safety check, the health check, the debug-cursor decision, a new
    driver cursor and Django's wrapper around it, both closed again). The statement runs inside
    Django's error wrapping and broken-transaction check, as through Django's cursor.
    """
    cursor = _driver_cursor(db)
    if cursor is None:
        with db.cursor() as wrapped:
            execute_statement(wrapped, sql, params)
            return wrapped.fetchall() if fetch else wrapped.rowcount
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        cursor.execute(_qmark(sql), params)
        return cursor.fetchall() if fetch else cursor.rowcount


def _driver_cursor(db: Any) -> Any:
    """The open SQLite connection's kept driver cursor, or None when Django's cursor must run."""
    raw = db.connection
    if (
        raw is None  # not connected yet: Django's cursor connects (and refuses an async context)
        or db.vendor != "sqlite"
        or db.force_debug_cursor
        or settings.DEBUG
        or db.execute_wrappers
        or (db.health_check_enabled and not db.health_check_done)
    ):
        return None
    kept = db.__dict__.get("_statement_cursor")  # (the driver connection, its cursor)
    if kept is None or kept[0] is not raw:
        kept = (raw, raw.cursor())  # a reconnect made a new driver connection: a new cursor
        db._statement_cursor = kept
    return kept[1]


def execute_statement(cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """`cursor.execute(sql, params)` without Django's SQLite rewrite of `%s` into `?`, a regular
    expression run over the whole statement on every call (a tenth of the bridge's database
    thread): the rewritten statement is cached, and the driver's cursor runs it inside Django's
    error wrapping. Whenever something observes queries (the debug cursor of DEBUG and of the
    tests' query capture, or an execute wrapper) Django's own path runs instead."""
    db = cursor.db  # the connection itself: each `connection.x` goes through a thread-local proxy
    # A debug cursor is what `db.cursor()` returns when queries are logged (asking `queries_logged`
    # again would read settings.DEBUG through its lazy proxy a second time per statement).
    if db.vendor != "sqlite" or type(cursor) is not CursorWrapper or db.execute_wrappers:
        cursor.execute(sql, params)
        return
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        sqlite3.Cursor.execute(cursor.cursor, _qmark(sql), params)


@functools.lru_cache(maxsize=1024)
def _qmark(sql: str) -> str:
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def prep_lookup(field: models.Field, value: Any, db: Any) -> Any:
    """`field.get_db_prep_value(value, db)` (a WHERE value), without the call for the values it
    returns unchanged (`plain_type`: an int primary key, a str or a text choice, a bool)."""
    plain = plain_type(field)
    kind = type(value)
    if kind is plain or (plain is str and isinstance(value, str)):
        return value
    if kind is uuid.UUID or kind is datetime.datetime:
        return quicker_prep(field, value, db)
    return field.get_db_prep_value(value, db)


def prep_value(field: models.Field, value: Any, db: Any = connection) -> Any:
    """`field.get_db_prep_save(value, db)` (a stored value), the same way round."""
    if value is None:
        return None
    plain = plain_type(field)
    kind = type(value)
    if kind is plain or (plain is str and isinstance(value, str)):
        return value
    if kind is uuid.UUID or kind is datetime.datetime:
        return quicker_prep(field, value, db)  # (neither is an expression: get_db_prep_value)
    return field.get_db_prep_save(value, db)
