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

from nostrbridge.rows import instances_from_rows, plain_type, quicker_converter, quicker_prep
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
    sql = _insert_sql(model, tuple(conflict), tuple(update), len(rows), names)
    now = None  # one `now` for every timestamp of the statement, converted once per column
    stamped: dict[int, Any] = {}  # keyed by the column's position (a Field's own hash is a Python method)
    last_prep: dict[int, tuple[Any, Any]] = {}  # per column: the last value prepared, and its result
    params: list[Any] = []
    for values in rows:
        defaults, given, computed = _row_shape(model, db, tuple(values))
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
    sql, fields, auto_pk = _instance_statement(model)
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
    sql, set_fields, where_fields = _update_statement(model, tuple(values), tuple(increments), where_names)
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
    sql, key_fields = _clock_statement(model, tuple(key), column)
    params = [field.get_db_prep_value(key[field.attname], db) for field in key_fields]
    ((value,),) = run_statement(db, sql, [*params, floor], fetch=True)
    return int(value)


def select_rows(model: type[ModelT], *, where: str, params: Sequence[Any]) -> list[ModelT]:
    """`SELECT <every concrete column> FROM <table> WHERE <where>` as model instances, the ones
    `model.objects.filter(…)` would load. `where` is SQL with `%s` placeholders for `params`
    (an ORDER BY may follow the condition); quote identifiers with `connection.ops.quote_name`."""
    db = db_connection()
    head = _select_statement(model)[0]
    return loaded_rows(model, db, run_statement(db, f"{head} WHERE {where}", params, fetch=True))


def loaded_rows(model: type[ModelT], db: Any, rows: Sequence[Sequence[Any]]) -> list[ModelT]:
    """The driver's rows of every concrete column, in field order (a `select_rows` SELECT or a
    `RETURNING` of `returned_columns(model)`), as the model instances the ORM would load."""
    _, attnames, converters = _select_statement(model)
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
        field = _field(model._meta, name)
        column = quote(_column(field))
        if isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                return []
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [prep_lookup(field, item, db) for item in value]
        else:
            conditions.append(f"{column} = %s")
            params.append(prep_lookup(field, value, db))
    order = quote(_column(model._meta.pk))
    return select_rows(model, where=f"{' AND '.join(conditions)} ORDER BY {order}", params=params)


def select_one(model: type[ModelT], **equals: Any) -> ModelT | None:
    """The row whose columns (by attname) equal the given values, or None: for a lookup by a
    unique key, what `model.objects.filter(**equals).first()` loads. A None value matches nothing
    (SQL equality), as the unique lookups that use this want."""
    db = db_connection()
    if any(value is None for value in equals.values()):
        return None
    where, fields = _where_equal(model, tuple(equals))
    params = [prep_lookup(field, equals[field.attname], db) for field in fields]
    rows = select_rows(model, where=where, params=params)
    return rows[0] if rows else None


@functools.cache
def returned_columns(model: type[models.Model]) -> str:
    """Every concrete column in field order, for a `RETURNING` that `loaded_rows` turns into instances."""
    quote = connection.ops.quote_name
    return ", ".join(quote(_column(field)) for field in model._meta.concrete_fields)


@functools.cache
def quoted_column(model: type[models.Model], attname: str) -> str:
    """The quoted column of a concrete field, for the WHERE clauses of `select_rows`."""
    return connection.ops.quote_name(_column(_field(model._meta, attname)))


@functools.cache
def table_name(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


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


_STAMP_ALWAYS = "auto_now"
_STAMP_IF_MISSING = "auto_now_add"


@functools.cache
def _insert_plan(model: type[models.Model]) -> list[tuple[models.Field, str, str | None, type | None]]:
    """Per inserted column, prepared once: (field, attname, timestamp rule, the Python type that
    goes to the driver unchanged)."""
    plan: list[tuple[models.Field, str, str | None, type | None]] = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        stamp = (
            _STAMP_ALWAYS
            if getattr(field, "auto_now", False)
            else _STAMP_IF_MISSING
            if getattr(field, "auto_now_add", False)
            else None
        )
        plan.append((field, field.attname, stamp, plain_type(field)))
    return plan


# Per (model, database vendor, the attnames a row gives, in its order): the row's parameters
# with every constant default in place, the given columns to convert, and the columns computed
# per statement or per row (a timestamp rule, or "" for a callable default).
RowShape = tuple[list[Any], list[tuple[int, str, models.Field, type | None]], list[tuple[int, models.Field, str]]]
_row_shapes: dict[tuple[type[models.Model], str, tuple[str, ...]], RowShape] = {}


def _row_shape(model: type[models.Model], db: Any, given_names: tuple[str, ...]) -> RowShape:
    key = (model, db.vendor, given_names)
    found = _row_shapes.get(key)
    if found is None:
        found = _row_shapes[key] = _worked_out_shape(model, db, set(given_names))
    return found


def _worked_out_shape(model: type[models.Model], db: Any, given_names: set[str]) -> RowShape:
    defaults: list[Any] = []
    given: list[tuple[int, str, models.Field, type | None]] = []
    computed: list[tuple[int, models.Field, str]] = []
    for position, (field, attname, stamp, plain) in enumerate(_insert_plan(model)):
        defaults.append(None)
        if stamp is _STAMP_ALWAYS or (stamp is _STAMP_IF_MISSING and attname not in given_names):
            computed.append((position, field, stamp))
        elif attname in given_names:
            given.append((position, attname, field, plain))
        elif field.has_default() and callable(field.default):
            computed.append((position, field, ""))
        else:
            value = field.get_default()  # the same conversion as a value given for the column
            defaults[position] = value if value is None or type(value) is plain else field.get_db_prep_save(value, db)
    return defaults, given, computed


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


@functools.cache
def _insert_statement(
    model: type[models.Model], conflict: tuple[str, ...], update: tuple[str, ...]
) -> tuple[str, list[models.Field]]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(field)) for field in fields)
    sql = f"INSERT INTO {table_name(model)} ({columns}) VALUES {{values}}"
    if conflict:
        target = ", ".join(quote(_column(_field(model._meta, name))) for name in conflict)
        overwrite = [_field(model._meta, name) for name in update]
        overwrite += [field for field in fields if getattr(field, "auto_now", False) and field not in overwrite]
        if update:
            assignments = ", ".join(
                f"{quote(_column(field))} = EXCLUDED.{quote(_column(field))}" for field in overwrite
            )
            sql += f" ON CONFLICT ({target}) DO UPDATE SET {assignments}"
        else:
            sql += f" ON CONFLICT ({target}) DO NOTHING"
    return sql, fields


@functools.lru_cache(maxsize=512)
def _insert_sql(
    model: type[models.Model],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    row_count: int,
    returned: tuple[str, ...],
) -> str:
    """The whole INSERT of `row_count` rows (one string per shape: its `%s` rewrite is cached by it)."""
    sql_head, fields = _insert_statement(model, conflict, update)
    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = sql_head.replace("{values}", ", ".join([one_row] * row_count))
    if returned:
        sql += " RETURNING " + ", ".join(quoted_column(model, name) for name in returned)
    return sql


@functools.cache
def _instance_statement(model: type[models.Model]) -> tuple[str, list[models.Field], models.Field | None]:
    """The INSERT of every concrete column, the auto-increment key (read back) left out."""
    pk = model._meta.pk
    auto_pk = pk if isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField) else None
    fields = [field for field in model._meta.concrete_fields if field is not auto_pk]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(field)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table_name(model)} ({columns}) VALUES ({placeholders})"
    if auto_pk is not None:
        sql += f" RETURNING {quote(_column(auto_pk))}"  # SQLite >= 3.35 and PostgreSQL
    return sql, fields, auto_pk


@functools.cache
def _update_statement(
    model: type[models.Model],
    set_names: tuple[str, ...],
    increments: tuple[str, ...],
    where_names: tuple[tuple[str, bool], ...],
) -> tuple[str, list[models.Field], list[models.Field]]:
    meta = model._meta
    quote = connection.ops.quote_name
    set_fields = [_field(meta, name) for name in set_names]
    where_fields = [_field(meta, name) for name, _ in where_names]
    assignments = [f"{quote(_column(field))} = %s" for field in set_fields]
    for name in increments:
        column = quote(_column(_field(meta, name)))
        assignments.append(f"{column} = {column} + 1")
    conditions = [
        f"{quote(_column(field))} IN ({{}})" if is_list else f"{quote(_column(field))} = %s"
        for field, (_, is_list) in zip(where_fields, where_names, strict=True)
    ]
    # Braces in identifiers would break str.format below; Django identifiers never have them.
    sql = f"UPDATE {table_name(model)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
    return sql, set_fields, where_fields


@functools.cache
def _select_statement(model: type[models.Model]) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
    """The SELECT head, the attnames in column order, and (index, converters, column expression)
    for each column that needs converting (what SQLCompiler.get_converters computes per query)."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(field)) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((index, [quicker_converter(convert) for convert in found], expression))
    return f"SELECT {columns} FROM {table_name(model)}", [field.attname for field in fields], converters


@functools.cache
def _clock_statement(model: type[models.Model], key: tuple[str, ...], column: str) -> tuple[str, list[models.Field]]:
    quote = connection.ops.quote_name
    key_fields = [_field(model._meta, name) for name in key]
    keys = ", ".join(quote(_column(field)) for field in key_fields)
    value = quote(_column(_field(model._meta, column)))
    current = f"{table_name(model)}.{value}"
    placeholders = ", ".join(["%s"] * (len(key_fields) + 1))
    sql = (
        f"INSERT INTO {table_name(model)} ({keys}, {value}) VALUES ({placeholders})"
        f" ON CONFLICT ({keys}) DO UPDATE SET {value} ="
        f" CASE WHEN {current} + 1 > EXCLUDED.{value} THEN {current} + 1 ELSE EXCLUDED.{value} END"
        f" RETURNING {value}"
    )
    return sql, key_fields


@functools.cache
def _where_equal(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, list[models.Field]]:
    fields = [_field(model._meta, name) for name in names]
    quote = connection.ops.quote_name
    return " AND ".join(f"{quote(_column(field))} = %s" for field in fields), fields


def _column(field: models.Field) -> str:
    """A concrete field's column (Django types it optional for fields that have none)."""
    assert field.column is not None, field
    return field.column


def _field(meta: Any, attname: str) -> models.Field:
    for field in meta.concrete_fields:
        if field.attname == attname:
            return field
    raise ValueError(f"{meta.label} has no column {attname!r}")
