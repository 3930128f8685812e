"""Value objects: identifiers, SKU, quantities, addresses, actors.

All are frozen attrs classes; an invalid value raises a typed :mod:`ordercore.errors` error naming the
field and the reason. :class:`Address` reports every problem at once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar, Self

import attrs

from ordercore.errors import (
    InvalidAddress,
    InvalidIdentifier,
    InvalidQuantity,
    InvalidTimestamp,
    InvalidValue,
    Problem,
    ValidationFailed,
)

__all__ = [
    "COUNTRY_CODES",
    "Actor",
    "Address",
    "Channel",
    "CustomerId",
    "CustomerRef",
    "GeoPoint",
    "LineId",
    "OrderId",
    "Sku",
    "MAX_QUANTITY",
    "check_aware",
    "check_quantity",
    "text_fault",
]

# ISO 3166-1 alpha-2, officially assigned codes.
COUNTRY_CODES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-/#]*")
_MAX_ID = 64


#: the most units one quantity may hold (a line, a receipt, a count, a reservation): 2**31 - 1, what every
#: store keeps in a 32-bit integer column, so that a quantity one store takes no other store refuses
MAX_QUANTITY = 2**31 - 1


def check_quantity(value: object, field: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is a whole number of units (>= 1, or >= 0 with ``allow_zero``), at most
    :data:`MAX_QUANTITY`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantity(f"must be a whole number, not {type(value).__name__}", field=field, value=value)
    if value < 0 or (value == 0 and not allow_zero):
        floor = 0 if allow_zero else 1
        raise InvalidQuantity(f"must be at least {floor}", field=field, value=value)
    if value > MAX_QUANTITY:
        raise InvalidQuantity(f"must be at most {MAX_QUANTITY:,}", field=field, value=value)
    return value


def text_fault(value: str) -> str | None:
    """Why ``value`` cannot be kept as text by every store, or None when it can: a NUL character
    (PostgreSQL's text types refuse it) or a lone surrogate (a ``str`` decoded with ``surrogateescape``,
    say: no UTF-8 encoding holds it). The checks of free text (reasons, messages, descriptions, names,
    attributes, addresses) refuse both, naming the field, so that what one store takes every store takes."""
    if "\x00" in value:
        return "must not contain a NUL character"
    if not value.isascii():  # isascii is a flag of the string: only other text is encoded to look
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain a lone surrogate (text that is not valid Unicode)"
    return None


def check_text_fault(value: str, field: str) -> None:
    """Raise InvalidValue naming ``field`` when :func:`text_fault` finds one in ``value``."""
    fault = text_fault(value)
    if fault is not None:
        raise InvalidValue(fault, field=field, value=value)


def plain_text(value: object, longest: int) -> bool:
    """Whether ``value`` is a ``str`` (not a subclass) of 1 to ``longest`` ASCII characters, no NUL, without
    whitespace at either end: what the key and node id checks take, recognised at a glance by the quick paths that
    then skip them (anything else is checked in full)."""
    return (
        type(value) is str
        and 0 < len(value) <= longest
        and not value[0].isspace()
        and not value[-1].isspace()
        and value.isascii()  # a flag of the string; other text takes the full check (see text_fault)
        and "\x00" not in value
    )


def check_aware(value: object, field: str) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise InvalidTimestamp(f"must be a datetime, not {type(value).__name__}", field=field, value=value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestamp("must be timezone-aware", field=field, value=value)
    return value


class _Identifier:
    """Base of string identifiers: 1-64 characters, starting alphanumeric, no whitespace."""

    __slots__ = ()
    kind: ClassVar[str] = "identifier"
    value: str

    def __attrs_post_init__(self) -> None:
        v = self.value
        if not isinstance(v, str):
            raise InvalidIdentifier(f"must be a string, not {type(v).__name__}", field=self.kind, value=v)
        if not v:
            raise InvalidIdentifier("must not be empty", field=self.kind, value=v)
        if len(v) > _MAX_ID:
            raise InvalidIdentifier(f"must be at most {_MAX_ID} characters", field=self.kind, value=v)
        if not _IDENTIFIER.fullmatch(v):
            raise InvalidIdentifier(
                "may hold letters, digits and . _ : - / # only, and must start with a letter or digit",
                field=self.kind,
                value=v,
            )

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    @classmethod
    def parse(cls, value: object) -> Self:
        """Accept an instance of this class or its string form."""
        if isinstance(value, cls):
            return value
        return cls(value)  # type: ignore[call-arg]


@attrs.frozen(repr=False, cache_hash=True)
class OrderId(_Identifier):
    kind: ClassVar[str] = "order_id"
    value: str


@attrs.frozen(repr=False, cache_hash=True)
class LineId(_Identifier):
    kind: ClassVar[str] = "line_id"
    value: str


@attrs.frozen(repr=False, cache_hash=True)
class CustomerId(_Identifier):
    kind: ClassVar[str] = "customer_id"
    value: str


@attrs.frozen(repr=False, cache_hash=True)
class Channel(_Identifier):
    """A sales channel: ``web``, ``edi``, ``amazon-de``, ``pos-store-12``..."""

    kind: ClassVar[str] = "channel"
    value: str


@attrs.frozen(repr=False, cache_hash=True)
class Sku(_Identifier):
    """A stock keeping unit code."""

    kind: ClassVar[str] = "sku"
    value: str


@attrs.frozen
class GeoPoint:
    """A WGS 84 coordinate in decimal degrees."""

    latitude: float
    longitude: float

    def __attrs_post_init__(self) -> None:
        problems = []
        for name, limit in (("latitude", 90.0), ("longitude", 180.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not -limit <= v <= limit:
                problems.append(
                    Problem(name, InvalidAddress.code, f"must be a number from -{limit:g} to {limit:g}", v)
                )
        if problems:
            raise ValidationFailed(problems, subject="coordinates")


_POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 \-]{0,11}")


@attrs.frozen
class Address:
    """A postal address. ``country`` is an ISO 3166-1 alpha-2 code; coordinates are optional."""

    country: str
    postal_code: str
    city: str
    line1: str
    line2: str = ""
    region: str = ""
    name: str = ""
    company: str = ""
    phone: str = ""
    email: str = ""
    coordinates: GeoPoint | None = None

    def __attrs_post_init__(self) -> None:
        problems = list(address_problems(self))
        if problems:
            raise ValidationFailed(problems, subject="address")


def address_problems(address: Address) -> list[Problem]:
    """Every problem with an address's fields (empty when valid)."""
    problems: list[Problem] = []
    code = InvalidAddress.code
    text_fields = ("country", "postal_code", "city", "line1", "line2", "region", "name", "company")
    for name in (*text_fields, "phone", "email"):
        v = getattr(address, name)
        if not isinstance(v, str):
            problems.append(Problem(name, code, f"must be a string, not {type(v).__name__}", v))
        elif len(v) > 200:
            problems.append(Problem(name, code, "must be at most 200 characters", v))
        elif (fault := text_fault(v)) is not None:
            problems.append(Problem(name, code, fault, v))
    if problems:
        return problems
    if address.country not in COUNTRY_CODES:
        problems.append(
            Problem("country", code, "is not an ISO 3166-1 alpha-2 country code", address.country)
        )
    if not _POSTAL_CODE.fullmatch(address.postal_code):
        problems.append(
            Problem(
                "postal_code", code, "must be 1-12 letters, digits, spaces or dashes", address.postal_code
            )
        )
    for name in ("city", "line1"):
        if not getattr(address, name).strip():
            problems.append(Problem(name, code, "is required", getattr(address, name)))
    if address.email and ("@" not in address.email or address.email.startswith("@")):
        problems.append(Problem("email", code, "is not an e-mail address", address.email))
    if address.coordinates is not None and not isinstance(address.coordinates, GeoPoint):
        problems.append(Problem("coordinates", code, "must be a GeoPoint", address.coordinates))
    return problems


@attrs.frozen
class CustomerRef:
    """Who ordered: the customer's id, and optionally segment and e-mail for rules and notifications."""

    id: CustomerId
    segment: str = ""
    email: str = ""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, CustomerId):
            raise InvalidIdentifier("must be a CustomerId", field="customer.id", value=self.id)
        for name in ("segment", "email"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise InvalidValue(
                    f"must be a string, not {type(v).__name__}", field=f"customer.{name}", value=v
                )
            check_text_fault(v, f"customer.{name}")


class ActorKind:
    """The kinds of actor; plain constants so users may add their own."""

    USER = "user"
    SYSTEM = "system"
    CHANNEL = "channel"
    INTEGRATION = "integration"


@attrs.frozen
class Actor:
    """Who caused a change: ``Actor.user("alice")``, ``Actor.system("rules")``."""

    kind: str
    id: str

    def __attrs_post_init__(self) -> None:
        for name in ("kind", "id"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v or len(v) > 128:
                raise InvalidValue(
                    "must be a non-empty string of at most 128 characters", field=name, value=v
                )
            check_text_fault(v, f"actor.{name}")

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls(ActorKind.USER, user_id)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(ActorKind.SYSTEM, component)

    @classmethod
    def channel(cls, channel: str) -> Actor:
        return cls(ActorKind.CHANNEL, channel)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"
