"""Static types of the condition language and the schema that names what a condition may read."""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from ordercore.errors import InvalidValue

__all__ = [
    "BOOL",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "DURATION",
    "INT",
    "MONEY",
    "STRING",
    "ListOf",
    "Nullable",
    "Record",
    "Scalar",
    "Schema",
    "Type",
]

#: Words of the language that can never be field names.
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def is_safe_identifier(name: str) -> bool:
    """A name the language accepts: ``[A-Za-z][A-Za-z0-9_]*``, no ``__``, not a keyword."""
    return bool(_IDENTIFIER.match(name)) and "__" not in name and name not in KEYWORDS


class Type:
    """Base of every static type (``BOOL``, ``ListOf(STRING)``, ``Nullable(DATE)``, a ``Record``...)."""

    __slots__ = ()


@attrs.frozen
class Scalar(Type):
    """A plain value type, named (``int``, ``money``...). Use the module constants, not this class."""

    name: str

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class ListOf(Type):
    """A sequence of values of one type (a Python list or tuple at run time)."""

    element: Type

    def __str__(self) -> str:
        return f"list[{self.element}]"


def _not_nullable(instance: object, attribute: object, value: Type) -> None:
    if isinstance(value, Nullable):
        raise InvalidValue("a nullable type cannot be nullable again", field="inner", value=value)


@attrs.frozen
class Nullable(Type):
    """A value that may be ``None`` at run time (written ``T?``)."""

    inner: Type = attrs.field(validator=_not_nullable)

    def __str__(self) -> str:
        return f"{self.inner}?"


def _field_map(fields: Mapping[str, Type]) -> dict[str, Type]:
    return dict(fields)


@attrs.frozen
class Record(Type):
    """An object with named, typed attributes (``order``, ``customer``, an order line...)."""

    name: str
    fields: Mapping[str, Type] = attrs.field(converter=_field_map, hash=False)

    def __str__(self) -> str:
        return self.name


BOOL = Scalar("bool")
INT = Scalar("int")
DECIMAL = Scalar("decimal")
STRING = Scalar("string")
MONEY = Scalar("money")
DATE = Scalar("date")
DATETIME = Scalar("datetime")
DURATION = Scalar("duration")
#: The type of the ``null`` literal (internal).
NULL = Scalar("null")
#: The element type of the empty list literal ``[]`` (internal).
NOTHING = Scalar("nothing")
#: The type of an expression that already has a problem; silences follow-up errors (internal).
ERROR = Scalar("error")

NUMBERS = frozenset({INT, DECIMAL})
ORDERED = frozenset({INT, DECIMAL, MONEY, STRING, DATE, DATETIME, DURATION})


def strip(t: Type) -> Type:
    """``T`` for ``T?``, else ``t``."""
    return t.inner if isinstance(t, Nullable) else t


def unify(a: Type, b: Type) -> Type | None:
    """The common type of two values (int and decimal give decimal), or None when there is none."""
    if a == b:
        return a
    if a == NOTHING:
        return b
    if b == NOTHING:
        return a
    if a in NUMBERS and b in NUMBERS:
        return DECIMAL
    if isinstance(a, ListOf) and isinstance(b, ListOf):
        element = unify(a.element, b.element)
        return None if element is None else ListOf(element)
    return None


def accepts(expected: Type, actual: Type) -> bool:
    """Whether a value of type ``actual`` may be used where ``expected`` is required."""
    actual = strip(actual)
    if actual in (expected, ERROR):
        return True
    if expected == DECIMAL and actual == INT:
        return True
    if isinstance(expected, ListOf) and isinstance(actual, ListOf):
        return actual.element == NOTHING or accepts(expected.element, actual.element)
    return False


def _validate(t: Type, where: str, seen: set[int]) -> None:
    if id(t) in seen:
        return
    seen.add(id(t))
    if isinstance(t, Nullable):
        _validate(t.inner, where, seen)
    elif isinstance(t, ListOf):
        _validate(t.element, where + "[]", seen)
    elif isinstance(t, Record):
        for name, field_type in t.fields.items():
            if not isinstance(name, str) or not is_safe_identifier(name):
                raise InvalidValue(
                    "is not a usable field name: it must match [A-Za-z][A-Za-z0-9_]*, contain no '__' "
                    "and not be a keyword",
                    field=f"{where}.{name}" if where else str(name),
                    value=name,
                    code="invalid_schema",
                )
            if not isinstance(field_type, Type):
                raise InvalidValue(
                    "is not a condition-language type",
                    field=f"{where}.{name}" if where else name,
                    value=field_type,
                    code="invalid_schema",
                )
            _validate(field_type, f"{where}.{name}" if where else name, seen)
    elif not isinstance(t, Scalar) or t in (NULL, NOTHING, ERROR):
        raise InvalidValue("is not a usable field type", field=where, value=t, code="invalid_schema")


@attrs.frozen
class Schema:
    """What conditions may read: the fields of ``root`` are the top-level names (``order``, ``now``...).

    Every field name is checked when the schema is built, so compiled code can only ever reach them.
    """

    root: Record

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.root, Record):
            raise InvalidValue("must be a Record", field="root", value=self.root, code="invalid_schema")
        _validate(self.root, "", set())
