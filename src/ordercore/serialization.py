"""Serialization at the edges: cattrs converters for every public value, event and the order.

Each adapter builds its own converter with :func:`make_converter` (or configures one of its own with
:func:`configure_converter`); nothing is registered on cattrs' global converter. Money is
``{"amount": "12.30", "currency": "EUR"}`` (the amount a string, never a float), times are ISO 8601 with
their offset, identifiers are plain strings, states and triggers their names, and events carry a ``type``.

:func:`parse` structures untrusted input and reports every problem at once as :class:`ValidationFailed`,
each problem naming its field path (``lines[0].unit_price.amount``).
"""

from __future__ import annotations

import enum
import json
import keyword
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import attrs
import cattrs
from cattrs.cols import namedtuple_dict_structure_factory, namedtuple_dict_unstructure_factory
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.fns import identity as _identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from dateutil.parser import isoparse

from ordercore.errors import (
    InvalidMoney,
    InvalidTimestamp,
    InvalidValue,
    OrderCoreError,
    Problem,
    ValidationFailed,
)
from ordercore.events import EVENT_TYPES, LineQty, NodeAllocation, NodeRejected, OrderEvent, WaitingUnits
from ordercore.inventory import Reservation, Reservations, StockPosition, Supplies, Supply
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle, State, Trigger
from ordercore.lines import FrozenAttributes, LineQuantities, OrderLine, frozen_attributes
from ordercore.money import Money, minor_units
from ordercore.order import Order
from ordercore.service.commands import PlaceOrder
from ordercore.values import Channel, CustomerId, LineId, OrderId, Sku

__all__ = ["configure_converter", "from_json", "make_converter", "parse", "to_json"]

T = TypeVar("T")

_IDENTIFIERS: tuple[type[Any], ...] = (OrderId, LineId, CustomerId, Channel, Sku)
_ABSTRACT_EVENTS = {"OrderEvent", "LinesEvent"}


def make_converter(
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE, *, event_types: Mapping[str, type[OrderEvent]] | None = None
) -> cattrs.Converter:
    """A new converter for ordercore's types. ``event_types`` adds user-defined events by type name."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    configure_converter(conv, lifecycle=lifecycle, event_types=event_types)
    return conv


def configure_converter(
    conv: cattrs.Converter,
    *,
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    event_types: Mapping[str, type[OrderEvent]] | None = None,
) -> None:
    """Register ordercore's hooks on ``conv`` (your own converter, never cattrs' global one)."""
    events = {**EVENT_TYPES, **(event_types or {})}

    # attrs classes come from JSON objects; anything else is refused with a clear message
    def attrs_structure(cls: type[Any]) -> Callable[[Any, Any], Any]:
        return _objects_only(make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True))

    conv.register_structure_hook_factory(attrs.has, attrs_structure)

    # scalars: strict, no silent coercion
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(float, _number)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_unstructure_hook(datetime, _isoformat)
    conv.register_structure_hook(datetime, _datetime)
    conv.register_unstructure_hook(date, _isoformat)
    conv.register_structure_hook(date, _date)

    conv.register_unstructure_hook(Money, _unstructure_money)
    conv.register_structure_hook(Money, _money)
    for cls in _IDENTIFIERS:
        conv.register_unstructure_hook(cls, _identifier_value)
        conv.register_structure_hook(cls, _identifier(cls))

    conv.register_unstructure_hook(LineQuantities, _quantities_dict)
    conv.register_structure_hook(LineQuantities, _quantities(conv))
    for named in (OrderLine, LineQty, NodeAllocation, WaitingUnits, NodeRejected):
        conv.register_unstructure_hook(named, namedtuple_dict_unstructure_factory(named, conv))
        structure_named = namedtuple_dict_structure_factory(named, conv, "from_converter", True)
        if named is OrderLine:  # a line's attributes cannot change: the order's copies share its lines
            structure_named = _with_frozen_attributes(structure_named)
        conv.register_structure_hook(named, _objects_only(structure_named))
    conv.register_unstructure_hook(State, _name)
    conv.register_structure_hook(
        State, _located(lambda v, _: lifecycle.state(_strict(str, "a state name")(v, str)))
    )
    conv.register_unstructure_hook(Trigger, _name)
    conv.register_structure_hook(
        Trigger, _located(lambda v, _: lifecycle.trigger(_strict(str, "a trigger name")(v, str)))
    )

    # arrays: a string or an object where an array is expected is refused, not iterated
    def is_array(t: Any) -> bool:
        origin = get_origin(t)
        args = get_args(t)
        return origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis)

    def array_structure(t: Any) -> Callable[[Any, Any], Any]:
        item_type = get_args(t)[0]
        make = get_origin(t)

        def structure(value: Any, _: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise InvalidValue(f"must be an array, not {type(value).__name__}", value=value)
            items, errors = [], []
            for i, item in enumerate(value):
                try:
                    items.append(conv.structure(item, item_type))
                except Exception as e:  # collected, and reported with the item's index
                    e.add_note(IterableValidationNote(f"Structuring {t} @ index {i}", i, item_type))
                    errors.append(e)
            if errors:
                raise IterableValidationError(f"While structuring {t!r}", errors, t)
            return make(items)

        return structure

    conv.register_structure_hook_factory(is_array, array_structure)

    # events: tagged with their type name
    def is_event(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, OrderEvent)

    def event_unstructure(cls: type[OrderEvent]) -> Callable[[OrderEvent], dict[str, Any]]:
        if cls.__name__ in _ABSTRACT_EVENTS:
            return lambda ev: conv.unstructure(ev, unstructure_as=type(ev))
        fn = make_dict_unstructure_fn(cls, conv)

        def unstructure(ev: OrderEvent) -> dict[str, Any]:
            return {"type": cls.__name__, **fn(ev)}

        return unstructure

    def event_structure(cls: type[OrderEvent]) -> Callable[[Any, Any], OrderEvent]:
        specific = (
            None
            if cls.__name__ in _ABSTRACT_EVENTS
            else make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        )

        def structure(data: Any, _: Any) -> OrderEvent:
            if not isinstance(data, Mapping):
                raise InvalidValue("must be an object", field="", value=data)
            name = data.get("type")
            target = events.get(name) if isinstance(name, str) else None
            if target is None or not issubclass(target, cls):
                raise InvalidValue(f"is not a known {cls.__name__} type", field="type", value=name)
            body = {k: v for k, v in data.items() if k != "type"}
            if target is cls and specific is not None:
                return specific(body, cls)
            return conv.structure({"type": name, **body}, target)

        return structure

    conv.register_unstructure_hook_factory(is_event, event_unstructure)
    conv.register_structure_hook_factory(is_event, event_structure)

    # the order: everything but the (process-local) lifecycle and persistence bookkeeping
    order_unstructure = make_dict_unstructure_fn(
        Order, conv, lifecycle=override(omit=True), persisted_version=override(omit=True)
    )
    order_structure = make_dict_structure_fn(
        Order,
        conv,
        _cattrs_forbid_extra_keys=True,
        lifecycle=override(omit=True),
        persisted_version=override(omit=True),
    )

    @_objects_only
    def structure_order(data: Any, _: Any) -> Order:
        order = order_structure(data, Order)
        order.lifecycle = lifecycle
        order.persisted_version = order.version
        return order

    conv.register_unstructure_hook(Order, order_unstructure)
    conv.register_structure_hook(
        PlaceOrder,
        _objects_only(
            make_dict_structure_fn(
                PlaceOrder, conv, _cattrs_forbid_extra_keys=True, currency=override(struct_hook=_currency)
            )
        ),
    )
    conv.register_structure_hook(Order, structure_order)

    # a position's open reservations: written as a JSON object by key
    conv.register_unstructure_hook(
        Reservations, lambda held: conv.unstructure(held.as_dict(), dict[str, Reservation])
    )
    conv.register_structure_hook(
        Reservations,
        _objects_only(lambda data, _: Reservations(conv.structure(data, dict[str, Reservation]))),
    )

    # and its expected supply, likewise by reference
    conv.register_unstructure_hook(Supplies, lambda due: conv.unstructure(due.as_dict(), dict[str, Supply]))
    conv.register_structure_hook(
        Supplies, _objects_only(lambda data, _: Supplies(conv.structure(data, dict[str, Supply])))
    )

    # a stock position: its state, without the persistence bookkeeping (the ledger is stored apart)
    position_unstructure = make_dict_unstructure_fn(
        StockPosition,
        conv,
        persisted_version=override(omit=True),
        _recorded=override(omit=True),
        _held_sum=override(omit=True),
    )
    position_structure = make_dict_structure_fn(
        StockPosition,
        conv,
        _cattrs_forbid_extra_keys=True,
        persisted_version=override(omit=True),
        _recorded=override(omit=True),
        _held_sum=override(omit=True),
    )

    @_objects_only
    def structure_position(data: Any, _: Any) -> StockPosition:
        position = position_structure(data, StockPosition)
        position.persisted_version = position.version
        return position

    conv.register_unstructure_hook(StockPosition, position_unstructure)
    conv.register_structure_hook(StockPosition, structure_position)


# -- hooks ------------------------------------------------------------------------------------------------
# unstructuring: named, so that text_encoder knows what a converter built here writes for these types
def _isoformat(value: date | datetime) -> str:
    return value.isoformat()


def _unstructure_money(money: Money) -> dict[str, str]:
    return {"amount": str(money.amount), "currency": money.currency}


def _identifier_value(identifier: Any) -> Any:
    return identifier.value


def _quantities_dict(quantities: LineQuantities) -> dict[str, int]:
    return dict(quantities._asdict())


def _name(named: State | Trigger) -> str:
    return named.name


def _with_frozen_attributes(hook: Callable[[Any, Any], OrderLine]) -> Callable[[Any, Any], OrderLine]:
    """``hook``, giving each line it makes :class:`FrozenAttributes`."""

    def structure(value: Any, cls: Any) -> OrderLine:
        line = hook(value, cls)
        if type(line.attributes) is FrozenAttributes:
            return line
        return line._replace(attributes=frozen_attributes(line.attributes))

    return structure


def _objects_only(hook: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """A structure hook for a class, refusing anything but a JSON object."""

    def structure(value: Any, cls: Any) -> T:
        if not isinstance(value, Mapping):
            raise InvalidValue(f"must be an object, not {type(value).__name__}", value=value)
        return hook(value, cls)

    return structure


def _strict(kind: type, what: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise InvalidValue(f"must be {what}, not {type(value).__name__}", value=value)
        return value

    return structure


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"must be a whole number, not {type(value).__name__}", value=value)
    return value


def _number(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"must be a number, not {type(value).__name__}", value=value)
    return float(value)


def _decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidValue(f"must be a decimal string, not {type(value).__name__}", value=value)
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise InvalidValue("is not a decimal number", value=value) from None
    if not result.is_finite():
        raise InvalidValue("must be finite", value=value)
    return result


def _datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidTimestamp(f"must be an ISO 8601 string, not {type(value).__name__}", value=value)
    try:
        # the standard library reads what ordercore writes (and most ISO 8601) much faster than dateutil,
        # which remains for the rest of ISO 8601 (week dates, say)
        result: datetime = datetime.fromisoformat(value)
    except ValueError:
        try:
            result = isoparse(value)
        except (ValueError, OverflowError):
            raise InvalidTimestamp("is not an ISO 8601 date and time", value=value) from None
    if result.tzinfo is None or result.utcoffset() is None:
        raise InvalidTimestamp("must carry a timezone offset", value=value)
    return result


def _date(value: Any, _: Any) -> date:
    if not isinstance(value, str):
        raise InvalidValue(f"must be an ISO 8601 date string, not {type(value).__name__}", value=value)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValue("is not an ISO 8601 date (YYYY-MM-DD)", value=value) from None


def _money(value: Any, _: Any) -> Money:
    if not isinstance(value, Mapping):
        raise InvalidMoney('must be an object like {"amount": "12.30", "currency": "EUR"}', value=value)
    extra = set(value) - {"amount", "currency"}
    problems = [Problem(k, "unexpected_field", "is not a field of money", value[k]) for k in sorted(extra)]
    for key in ("amount", "currency"):
        if key not in value:
            problems.append(Problem(key, InvalidMoney.code, "is required"))
    if problems:
        raise ValidationFailed(problems, subject="money")
    amount = value["amount"]
    if isinstance(amount, float):
        raise InvalidMoney("must be a decimal string, not a float", field="amount", value=amount)
    return Money.of(amount, value["currency"])


def _located(hook: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """A hook for a single value, whose errors take their field from where the value sits."""

    def structure(value: Any, cls: Any) -> T:
        try:
            return hook(value, cls)
        except InvalidValue as e:
            raise InvalidValue(e.reason, value=value, code=e.code) from None

    return structure


@_located
def _currency(value: Any, _: Any) -> str:
    code: str = _strict(str, "a currency code")(value, str)
    minor_units(code)
    return code


def _quantities(conv: cattrs.Converter) -> Callable[[Any, Any], LineQuantities]:
    fields = LineQuantities._fields

    def structure(value: Any, _: Any) -> LineQuantities:
        if not isinstance(value, Mapping):
            raise InvalidValue(f"must be an object, not {type(value).__name__}", value=value)
        problems = [
            Problem(k, "unexpected_field", "is not a known field", None) for k in value if k not in fields
        ]
        counts: dict[str, int] = {}
        for name in fields[:2]:
            if name not in value:
                problems.append(Problem(name, "required", "is required", None))
        for name in fields:
            if name in value:
                try:
                    counts[name] = _strict_int(value[name], int)
                except InvalidValue as e:
                    problems.append(e.problem().at(name))
        if problems:
            raise ValidationFailed(problems, subject="quantities")
        return LineQuantities(**counts)

    return structure


def _identifier(cls: type[Any]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        try:
            return cls(value)
        except InvalidValue as e:  # the path comes from where the identifier sits
            raise InvalidValue(f"{e.reason} ({cls.kind})", value=value, code=e.code) from None

    return structure


# -- parsing untrusted input ------------------------------------------------------------------------------
@cache
def _default_converter() -> cattrs.Converter:
    return make_converter()


def parse(data: Any, cls: type[T], *, converter: cattrs.Converter | None = None) -> T:
    """Structure ``data`` (parsed JSON) into ``cls``; every problem is reported in one ValidationFailed."""
    conv = converter or _default_converter()
    try:
        return conv.structure(data, cls)
    except RecursionError:
        problem = Problem("", InvalidValue.code, "is nested too deeply to be read", None)
        raise ValidationFailed([problem], subject=getattr(cls, "__name__", str(cls))) from None
    except Exception as e:
        problems = _problems(e, "")
        if not problems:  # pragma: no cover - defensive
            raise
        raise ValidationFailed(problems, subject=getattr(cls, "__name__", str(cls))) from e


def _join(path: str, part: str) -> str:
    if not path:
        return part.lstrip(".")
    return path + part


def _problems(exc: BaseException, path: str) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(exc, IterableValidationError):
        items, rest = exc.group_exceptions()
        for sub, item in items:
            out.extend(_problems(sub, _join(path, f"[{item.index!r}]".replace("'", ""))))
        for sub in rest:
            out.extend(_problems(sub, path))
        return out
    if isinstance(exc, ClassValidationError):
        fields, rest = exc.group_exceptions()
        for sub, attr in fields:
            out.extend(_problems(sub, _join(path, f".{attr.name}")))
        for sub in rest:
            out.extend(_problems(sub, path))
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            Problem(_join(path, f".{k}"), "unexpected_field", "is not a known field", None)
            for k in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ValidationFailed):
        return [p.at(path) for p in exc.problems]
    if isinstance(exc, InvalidValue):
        return [exc.problem().at(path)]
    if isinstance(exc, OrderCoreError):
        return [Problem(path, exc.code, exc.message, None)]
    if isinstance(exc, KeyError):
        return [Problem(path, "required", "is required", None)]
    if isinstance(exc, TypeError | ValueError | AttributeError):
        return [Problem(path, "invalid_value", str(exc) or type(exc).__name__, None)]
    return []


# -- JSON -------------------------------------------------------------------------------------------------
def to_json(obj: Any, *, converter: cattrs.Converter | None = None, indent: int | None = None) -> str:
    """JSON text for any ordercore value, event or order."""
    conv = converter or _default_converter()
    return json.dumps(conv.unstructure(obj), indent=indent, sort_keys=True, ensure_ascii=False)


def from_json(text: str | bytes, cls: type[T], *, converter: cattrs.Converter | None = None) -> T:
    """Parse JSON text into ``cls``; malformed JSON and invalid content raise ValidationFailed."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as e:
        raise ValidationFailed([Problem("", "invalid_json", str(e), None)], subject="JSON") from None
    except RecursionError:  # arrays or objects nested thousands deep: no document of ours is
        raise ValidationFailed(
            [Problem("", "invalid_json", "is nested too deeply to be read", None)], subject="JSON"
        ) from None
    return parse(data, cls, converter=converter)


# -- JSON text without the intermediate data, for stores ----------------------------------------------------
#: a JSON string as json.dumps(..., ensure_ascii=False) writes it
encode_str: Callable[[str], str] = json.encoder.encode_basestring
#: json.dumps(data, sort_keys=True, ensure_ascii=False), without building an encoder per call
dumps_sorted: Callable[[Any], str] = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


def _scalar(value: Any) -> str:
    """``dumps_sorted(value)``, quicker for strings, None, booleans, integers and finite floats."""
    kind = type(value)
    if kind is str:
        return encode_str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0:  # finite: json writes repr
        return float.__repr__(value)
    return dumps_sorted(value)


#: what code from :meth:`TextEncoders.expression` needs bound
GENERATED_NAMES: Mapping[str, Any] = {
    "_es": encode_str,
    "_ir": int.__repr__,
    "_scalar": _scalar,
    "str": str,
    "int": int,
}


def _to_text(hook: Callable[[Any], Any]) -> Callable[[Any], str]:
    return lambda value: dumps_sorted(hook(value))


class TextEncoders:
    """JSON text of values by their type, exactly as :func:`to_json` writes them with ``converter``, but
    written directly instead of unstructured to dicts first: one encoder per type, generated once from the
    type's attributes (attrs classes, events, named tuples) and from the hooks :func:`configure_converter`
    registers (money, identifiers, times, states). A type whose hook is not one of ours is written as
    ``to_json`` would (the hook, then ``json.dumps``), and each generated encoder of a composite type checks
    its first output against that and gives way to it for good if they differ (a converter of your own
    making may write a type otherwise)."""

    def __init__(self, converter: cattrs.Converter) -> None:
        self._conv = converter
        self._encoders: dict[Any, Callable[[Any], str]] = {}  # by type: as it is now
        self._final: dict[Any, Callable[[Any], str]] = {}  # by type: once checked (or needing no check)
        self._building: dict[Any, Callable[[Any], str]] = {}  # stand-ins of the types being built
        self._building_lock = threading.RLock()
        self._known: dict[Any, Callable[[Any], str]] = {
            _isoformat: lambda v: encode_str(v.isoformat()),
            _unstructure_money: lambda m: (
                '{"amount": ' + encode_str(str(m.amount)) + ', "currency": ' + _scalar(m.currency) + "}"
            ),
            _identifier_value: lambda v: _scalar(v.value),
            _name: lambda v: _scalar(v.name),
            str: lambda v: encode_str(str(v)),
        }

    def text(self, value: Any) -> str:
        """``to_json(value)`` for a value of any type."""
        return self.for_type(type(value))(value)

    def for_type(self, hint: Any) -> Callable[[Any], str]:
        """The encoder of values of type ``hint`` (a class or a type hint). Safe to call from several threads:
        encoders are built one at a time; a thread that reaches one still being built (through the encoder
        of a part of it, for a type that refers to itself) waits until it is."""
        encoder = self._final.get(hint) or self._encoders.get(hint)
        if encoder is not None:
            return encoder
        with self._building_lock:  # re-entrant: building a type builds the types of its parts
            encoder = self._final.get(hint) or self._encoders.get(hint) or self._building.get(hint)
            if encoder is None:
                # a stand-in while it is built, for a type that refers to itself: seen only by this
                # thread (the lock holder), called only once the encoder is in place
                self._building[hint] = lambda value: self._current(hint)(value)
                try:
                    encoder = self._encoders[hint] = self._build(hint)
                finally:
                    del self._building[hint]
        return encoder

    def _current(self, hint: Any) -> Callable[[Any], str]:
        """The encoder of ``hint`` as it is now. Called by a stand-in (or a slot) that another thread reached
        through an encoder built as part of ``hint``'s, while ``hint``'s is still being built: that thread
        waits for the build to end."""
        encoder = self._encoders.get(hint)
        if encoder is None:
            with self._building_lock:
                encoder = self._encoders[hint]
        return encoder

    def _build(self, hint: Any) -> Callable[[Any], str]:
        conv = self._conv
        try:
            hook = conv.get_unstructure_hook(hint)
        except Exception:  # a hint cattrs cannot handle: to_json's own way, whatever it does
            encoder: Callable[[Any], str] = lambda value: dumps_sorted(  # noqa: E731
                conv.unstructure(value, unstructure_as=hint)
            )
            self._final[hint] = encoder
            return encoder
        plain = _to_text(hook)
        built = _scalar if hook is _identity else self._known.get(hook)
        if built is not None:
            self._final[hint] = built
            return built
        try:
            built = self._composite(hint)
        except Exception:  # anything unforeseen: write it as to_json does
            built = None
        if built is None:
            self._final[hint] = plain
            return plain
        candidate, final = built, None

        def checking(value: Any) -> str:
            # compared with the hook then json.dumps on its first value, replaced by them for good if
            # they differ (the parts of a composite value are checked by their own encoders); whoever
            # still holds this one is sent on to the final encoder
            nonlocal final
            if final is not None:
                return final(value)
            text, expected = candidate(value), plain(value)
            final = candidate if text == expected else plain
            self._encoders[hint] = self._final[hint] = final
            return expected

        return checking

    def _composite(self, hint: Any) -> Callable[[Any], str] | None:
        origin, args = get_origin(hint), get_args(hint)
        if origin in (UnionType, Union) and len(args) == 2 and type(None) in args:
            other = args[0] if args[1] is type(None) else args[1]
            return self._generate(hint, "'null' if o is None else _e0(o)", [other])
        if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (
            origin is list and len(args) == 1
        ):
            return self._generate(hint, "'[' + ', '.join([_e0(v) for v in o]) + ']'", [args[0]])
        if origin is dict and args == (str, str):
            return _str_dict
        if not isinstance(hint, type):
            return None
        if issubclass(hint, enum.Enum):
            return self._generate(hint, "_scalar(o.value)", [])
        if hint is LineQuantities:
            return self._record(hint, [(k, int) for k in LineQuantities._fields])
        if issubclass(hint, tuple) and hasattr(hint, "_fields"):
            hints = get_type_hints(hint)
            return self._record(hint, [(k, hints[k]) for k in hint._fields])
        if attrs.has(hint):
            hints = get_type_hints(hint)
            fields = [(a.name, hints[a.name]) for a in attrs.fields(hint)]
            if issubclass(hint, OrderEvent) and hint.__name__ not in _ABSTRACT_EVENTS:
                return self._record(hint, fields, type_name=hint.__name__)
            if issubclass(hint, OrderEvent | Order | StockPosition):
                return None
            return self._record(hint, fields)
        return None

    def _record(
        self, cls: type, fields: list[tuple[str, Any]], type_name: str | None = None
    ) -> Callable[[Any], str] | None:
        """A generated encoder of an object of ``cls`` as a JSON object of ``fields`` in key order (plus
        ``"type": type_name`` for an event)."""
        if not all(name.isidentifier() and not keyword.iskeyword(name) for name, _ in fields):
            return None
        entries = [
            (name, self.expression(hint, f"o.{name}", f"_e{i}")) for i, (name, hint) in enumerate(fields)
        ]
        if type_name is not None:
            entries.append(("type", repr(encode_str(type_name))))
        entries.sort(key=lambda e: e[0])
        if not entries:
            return None
        pieces = [
            repr(("{" if n == 0 else ", ") + encode_str(name) + ": ") + " + " + expr
            for n, (name, expr) in enumerate(entries)
        ]
        return self._generate(cls, " + ".join(pieces) + " + '}'", [hint for _, hint in fields])

    def expression(self, hint: Any, value: str, encoder: str) -> str:
        """Python source that writes ``value`` (an expression, evaluated once), of type ``hint``: the usual
        cases inline (what the encoder of the type does), else a call of ``encoder``, which must be bound
        to the encoder of ``hint``. Generated code binds ``_es``, ``_ir`` and ``_scalar``
        (:data:`GENERATED_NAMES`)."""
        known, current = self._known, self.for_type(hint)
        if (hint is str or hint is int) and current is _scalar:  # an exact str or int
            write = "_es(v)" if hint is str else "_ir(v)"
            return f"({write} if (v := {value}).__class__ is {hint.__name__} else _scalar(v))"
        if current is known[_identifier_value] or current is known[_name]:
            attribute = "value" if current is known[_identifier_value] else "name"
            return f"(_es(v) if (v := {value}.{attribute}).__class__ is str else _scalar(v))"
        if current is known[_isoformat]:
            return f"_es({value}.isoformat())"
        return f"{encoder}({value})"

    def _generate(self, hint: Any, expression: str, parts: list[Any]) -> Callable[[Any], str]:
        """``lambda o: expression``, in which ``_e<i>`` writes a value of type ``parts[i]``. Each ``_e<i>``
        is looked up by name when called, so that it is replaced by the final encoder of its type once
        that is known (one call fewer per value)."""
        namespace: dict[str, Any] = dict(GENERATED_NAMES)
        for i, part in enumerate(parts):
            namespace[f"_e{i}"] = self._slot(namespace, f"_e{i}", part)
        source = f"def encode(o):\n    return {expression}\n"
        name = getattr(hint, "__qualname__", None) or str(hint)
        exec(compile(source, f"<text encoder of {name}>", "exec"), namespace)
        encoder: Callable[[Any], str] = namespace["encode"]
        return encoder

    def _slot(self, namespace: dict[str, Any], name: str, hint: Any) -> Callable[[Any], str]:
        """What ``name`` calls in a generated encoder until the encoder of ``hint`` is final: the
        encoder as it is now, then (written into ``namespace`` in its place) the final one."""
        self.for_type(hint)

        def slot(value: Any) -> str:
            final = self._final.get(hint)
            if final is None:
                return self._current(hint)(value)
            namespace[name] = final
            return final(value)

        return slot


#: the mappings :func:`_str_dict` writes itself: a dict, and the attributes of lines and events
_PLAIN_DICTS = (dict, FrozenAttributes)


def _str_dict(value: Any) -> str:
    """A ``dict[str, str]`` as json.dumps(sort_keys=True) writes it."""
    if not value:
        return "{}" if isinstance(value, dict) else dumps_sorted(value)
    if type(value) in _PLAIN_DICTS and all(type(k) is str and type(v) is str for k, v in value.items()):
        return "{" + ", ".join([encode_str(k) + ": " + encode_str(v) for k, v in sorted(value.items())]) + "}"
    return dumps_sorted(value)
