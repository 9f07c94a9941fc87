"""The SQL text and the per-shape plans of `nostrbridge.statements`, built once from the model's
own metadata (table and column names, defaults, `auto_now` / `auto_now_add`) and cached: each
function here runs once per model and shape, never per statement."""

import functools
from typing import Any

from django.db import connection, models

from nostrbridge.rows import plain_type, quicker_converter


@functools.cache
def returned_columns(model: type[models.Model]) -> str:
    """Every concrete column in field order, for a `RETURNING` that `loaded_rows` turns into instances."""
    quote = connection.ops.quote_name
    return ", ".join(quote(column_of(field)) for field in model._meta.concrete_fields)


@functools.cache
def quoted_column(model: type[models.Model], attname: str) -> str:
    """The quoted column of a concrete field, for the WHERE clauses of `select_rows`."""
    return connection.ops.quote_name(column_of(field_of(model._meta, attname)))


@functools.cache
def table_name(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


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


def row_shape(model: type[models.Model], db: Any, given_names: tuple[str, ...]) -> RowShape:
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


@functools.cache
def insert_statement_head(
    model: type[models.Model], conflict: tuple[str, ...], update: tuple[str, ...]
) -> tuple[str, list[models.Field]]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(field)) for field in fields)
    sql = f"INSERT INTO {table_name(model)} ({columns}) VALUES {{values}}"
    if conflict:
        target = ", ".join(quote(column_of(field_of(model._meta, name))) for name in conflict)
        overwrite = [field_of(model._meta, name) for name in update]
        overwrite += [field for field in fields if getattr(field, "auto_now", False) and field not in overwrite]
        if update:
            assignments = ", ".join(
                f"{quote(column_of(field))} = EXCLUDED.{quote(column_of(field))}" for field in overwrite
            )
            sql += f" ON CONFLICT ({target}) DO UPDATE SET {assignments}"
        else:
            sql += f" ON CONFLICT ({target}) DO NOTHING"
    return sql, fields


@functools.lru_cache(maxsize=512)
def insert_sql(
    model: type[models.Model],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    row_count: int,
    returned: tuple[str, ...],
) -> str:
    """The whole INSERT of `row_count` rows (one string per shape: its `%s` rewrite is cached by it)."""
    sql_head, fields = insert_statement_head(model, conflict, update)
    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = sql_head.replace("{values}", ", ".join([one_row] * row_count))
    if returned:
        sql += " RETURNING " + ", ".join(quoted_column(model, name) for name in returned)
    return sql


@functools.cache
def instance_statement(model: type[models.Model]) -> tuple[str, list[models.Field], models.Field | None]:
    """The INSERT of every concrete column, the auto-increment key (read back) left out."""
    pk = model._meta.pk
    auto_pk = pk if isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField) else None
    fields = [field for field in model._meta.concrete_fields if field is not auto_pk]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(field)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table_name(model)} ({columns}) VALUES ({placeholders})"
    if auto_pk is not None:
        sql += f" RETURNING {quote(column_of(auto_pk))}"  # SQLite >= 3.35 and PostgreSQL
    return sql, fields, auto_pk


@functools.cache
def update_statement(
    model: type[models.Model],
    set_names: tuple[str, ...],
    increments: tuple[str, ...],
    where_names: tuple[tuple[str, bool], ...],
) -> tuple[str, list[models.Field], list[models.Field]]:
    meta = model._meta
    quote = connection.ops.quote_name
    set_fields = [field_of(meta, name) for name in set_names]
    where_fields = [field_of(meta, name) for name, _ in where_names]
    assignments = [f"{quote(column_of(field))} = %s" for field in set_fields]
    for name in increments:
        column = quote(column_of(field_of(meta, name)))
        assignments.append(f"{column} = {column} + 1")
    conditions = [
        f"{quote(column_of(field))} IN ({{}})" if is_list else f"{quote(column_of(field))} = %s"
        for field, (_, is_list) in zip(where_fields, where_names, strict=True)
    ]
    # Braces in identifiers would break str.format below; Django identifiers never have them.
    sql = f"UPDATE {table_name(model)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
    return sql, set_fields, where_fields


@functools.cache
def select_statement(model: type[models.Model]) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
    """The SELECT head, the attnames in column order, and (index, converters, column expression)
    for each column that needs converting (what SQLCompiler.get_converters computes per query)."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(field)) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((index, [quicker_converter(convert) for convert in found], expression))
    return f"SELECT {columns} FROM {table_name(model)}", [field.attname for field in fields], converters


@functools.cache
def clock_statement(model: type[models.Model], key: tuple[str, ...], column: str) -> tuple[str, list[models.Field]]:
    quote = connection.ops.quote_name
    key_fields = [field_of(model._meta, name) for name in key]
    keys = ", ".join(quote(column_of(field)) for field in key_fields)
    value = quote(column_of(field_of(model._meta, column)))
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
def where_equal(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, list[models.Field]]:
    fields = [field_of(model._meta, name) for name in names]
    quote = connection.ops.quote_name
    return " AND ".join(f"{quote(column_of(field))} = %s" for field in fields), fields


def column_of(field: models.Field) -> str:
    """A concrete field's column (Django types it optional for fields that have none)."""
    assert field.column is not None, field
    return field.column


def field_of(meta: Any, attname: str) -> models.Field:
    for field in meta.concrete_fields:
        if field.attname == attname:
            return field
    raise ValueError(f"{meta.label} has no column {attname!r}")
