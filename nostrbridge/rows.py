"""Values between the driver and the models, for `nostrbridge.statements`: model instances from
the rows of a plain SELECT (`select_rows`), and the common values of the trade steps prepared
for the driver (`quicker_prep`).

`Model.from_db` calls the model's constructor, which sends `pre_init` and `post_init`, sets
each of the row's values through `setattr` (the field's class attribute decides where it goes)
and makes a `ModelState`. For a model whose constructor is Django's own, with no receiver of
either signal and only Django's plain column attributes (`DeferredAttribute`, which stores the
value in the instance's `__dict__`, and `ForeignKeyDeferredAttribute`, which does the same on an
instance with no cached related object, as a new one), that is: the values in `__dict__` under
their attnames and a `ModelState` with `adding = False` and the database alias. Loading the wide
order row that way costs a fraction of the constructor (2.6 % of mostrod's CPU in a trade run,
docs/PERFORMANCE.md); any other model, or a receiver connected at any time, goes through
`from_db` as before. `quicker_converter` does the same for SQLite's datetime converter.
"""

import datetime
import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

# The backend's base module first: importing its `operations` alone is a circular import
# (operations → base → operations) when no SQLite connection has loaded the backend (PostgreSQL).
import django.db.backends.sqlite3.base  # noqa: F401
from django.db import models
from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations
from django.db.models.base import Model, ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

ModelT = TypeVar("ModelT", bound=models.Model)
_PLAIN_ATTRIBUTES = (DeferredAttribute, ForeignKeyDeferredAttribute)


def instances_from_rows(
    model: type[ModelT], alias: str, attnames: list[str], rows: Sequence[list[Any]]
) -> list[ModelT]:
    """One instance per row (every concrete column, in `attnames` order, already converted), the
    instances `model.from_db(alias, attnames, row)` returns."""
    if not rows:
        return []
    # (A signal with no receiver at all has no listener: `has_listeners` itself costs a lookup.)
    if (
        not _loads_plainly(model, tuple(attnames))
        or (pre_init.receivers and pre_init.has_listeners(model))
        or (post_init.receivers and post_init.has_listeners(model))
    ):
        return [model.from_db(alias, attnames, row) for row in rows]
    new = model.__new__
    loaded = []
    for row in rows:
        obj = new(model)
        state = ModelState()
        state.adding = False
        state.db = alias
        obj.__dict__["_state"] = state
        obj.__dict__.update(zip(attnames, row, strict=True))
        loaded.append(obj)
    return loaded


@functools.cache
def _loads_plainly(model: type[models.Model], attnames: tuple[str, ...]) -> bool:
    """Django's own constructor and `from_db`, a concrete model, every concrete column in the
    row in field order, and each column's class attribute one of Django's plain ones."""
    meta = model._meta
    return (
        model.__init__ is Model.__init__
        and model.from_db.__func__ is Model.from_db.__func__  # type: ignore[attr-defined]
        and not meta.abstract
        and attnames == tuple(field.attname for field in meta.concrete_fields)
        and all(type(_inherited(model, name)) in _PLAIN_ATTRIBUTES for name in attnames)
    )


def _inherited(model: type[models.Model], name: str) -> Any:
    """The class attribute `name` as the instance would find it (a parent model's, if any)."""
    for klass in model.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def quicker_converter(convert: Callable[..., Any]) -> Callable[..., Any]:
    """`convert` (one of the converters Django's compiler picks for a column), or a quicker one
    that returns the same: SQLite's datetime converter for the naive datetime its driver hands
    back (the `timestamp` column type's parser), whose `make_aware` and `settings.USE_TZ` read
    per value were a third of loading an order row."""
    if getattr(convert, "__func__", None) is SQLiteOperations.convert_datetimefield_value:
        return _sqlite_datetime
    return convert


def _sqlite_datetime(value: Any, expression: Any, db: Any) -> Any:
    # `db.timezone` is None without USE_TZ (Django clears it when the setting changes), else
    # the zone `make_aware` would attach; anything else takes Django's own converter.
    if value is None:
        return None
    zone = db.timezone
    if zone is not None and type(value) is datetime.datetime and value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return db.ops.convert_datetimefield_value(value, expression, db)


_uuid_columns: dict[int, bool] = {}  # by id(field): model fields live as long as the process


def quicker_prep(field: models.Field, value: uuid.UUID | datetime.datetime, db: Any) -> Any:
    """`field.get_db_prep_value(value, db)` for a UUID or a datetime, without the field's chain of
    calls where the answer is known: a UUID for a UUID column (or a foreign key to one: every
    order id written or looked up) is `.hex`, or itself where the database has a UUID type; an
    aware datetime for a DateTimeField with time zone support on (`db.timezone` is None without
    it) is the naive text in the connection's zone on SQLite (`adapt_datetimefield_value`) and
    itself on PostgreSQL (every timestamp the trade steps write). Anything else (a naive
    datetime and its warning, another column type or database) takes the field's own path."""
    if type(value) is uuid.UUID and _stores_uuid(field):
        return value if db.features.has_native_uuid_field else value.hex
    if type(value) is datetime.datetime and type(field) is models.DateTimeField:
        zone = db.timezone
        if zone is not None and value.utcoffset() is not None:
            if db.vendor == "sqlite":
                return str(value.astimezone(zone).replace(tzinfo=None))
            if db.vendor == "postgresql":
                return value
    return field.get_db_prep_value(value, db)


def _stores_uuid(field: models.Field) -> bool:
    """A UUIDField of Django's own, or a foreign key whose target column is one. (Keyed by id:
    a Field's own hash is a Python method.)"""
    found = _uuid_columns.get(id(field))
    if found is None:
        target = field
        while isinstance(target, models.ForeignKey):
            target = target.target_field
        found = _uuid_columns[id(field)] = type(target) is models.UUIDField
    return found


_plain_types: dict[int, tuple[models.Field, type | None]] = {}  # by id(field); the field kept alive

# Django's own column types whose get_db_prep_save / get_db_prep_value return a value of the
# given type unchanged on SQLite and PostgreSQL (`to_python` of a str or a bool is itself).
_PLAIN_BY_TYPE: dict[type, type] = {models.CharField: str, models.TextField: str, models.BooleanField: bool}
_INTEGER_FIELDS = (models.IntegerField, models.BigIntegerField, models.PositiveIntegerField)


def plain_type(field: models.Field) -> type | None:
    """The Python type whose values go to the driver unchanged for `field` (str also covers a
    str subclass, a text choice), worked out once per field: a str for a text column, a bool
    for a boolean one, an int for an integer column or a foreign key to an auto-increment key
    (whose `get_db_prep_value` is `int()` and the backend's `validate_autopk_value`, the value
    itself on SQLite and PostgreSQL). None: every value takes the field's own conversion."""
    found = _plain_types.get(id(field))
    if found is None:
        found = _plain_types[id(field)] = (field, _plain_type_of(field))
    return found[1]


def _plain_type_of(field: models.Field) -> type | None:
    if type(field) in _PLAIN_BY_TYPE:
        return _PLAIN_BY_TYPE[type(field)]
    if isinstance(field, _INTEGER_FIELDS):
        return int
    target: Any = field
    while type(target) in (models.ForeignKey, models.OneToOneField):
        target = target.target_field
    if target is not field and isinstance(target, models.AutoField | models.BigAutoField | models.SmallAutoField):
        return int
    return None
