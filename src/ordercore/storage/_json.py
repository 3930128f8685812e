"""The JSON text a store writes for orders, events, stock positions and ledger entries, encoding only
what it has not encoded before."""

from __future__ import annotations

import keyword
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from ordercore.events import OrderEvent
from ordercore.inventory import LedgerEntry, StockPosition
from ordercore.inventory.held import Reservations, Supplies
from ordercore.inventory.ledger import Reservation, Supply
from ordercore.order import Order
from ordercore.serialization import GENERATED_NAMES, TextEncoders, dumps_sorted, encode_str, to_json
from ordercore.storage._copies import Bounded
from ordercore.values import Address, CustomerRef

_ORDER_ATTRIBUTES = tuple(a.name for a in attrs.fields(Order))


#: order attributes written as JSON, in key order, and those whose values are immutable (frozen values or
#: tuples of them, replaced when they change), whose text is kept by identity like an event's
_ORDER_KEYS = tuple(sorted(set(_ORDER_ATTRIBUTES) - {"lifecycle", "persisted_version"}))


_ORDER_KEPT = frozenset(
    {
        "customer",
        "shipping_address",
        "billing_address",
        "lines",
        "discounts",
        "shipping_charges",
        "shipping_taxes",
        "holds",
        "allocations",
    }
)


#: how an attribute is written: (key, '"key": ', the encoder of its type, whether its text is kept by
#: identity), or the history of an order (encoder None)
_Field = tuple[str, str, Callable[[Any], Any] | None, bool]


class StoredJson:
    """The JSON text a store writes for orders, events, stock positions and ledger entries: the very text
    :func:`to_json` gives, with the text of each event kept (events are immutable, and an event object is
    only ever encoded to one text). Writing an order encodes only the events it has not seen yet, however
    long the history, and the outbox row of an event reuses the text its order's history holds.

    Orders, events and positions are written attribute by attribute, in key order, by a function generated
    once per class, each attribute by the :class:`~ordercore.serialization.TextEncoders` encoder of its
    type (JSON text written straight from the values). The text of their immutable attributes (lines,
    addresses, the customer, allocations, a position's reservations: frozen values or tuples of them,
    replaced when they change) is kept too: an order read again shares them with the copy it was read
    from, and an event shares them with its order (``OrderCreated`` its lines and addresses), so each is
    encoded once. The first object of each class is also written as a whole, and attribute by attribute
    only if both agree (a converter of its own making may write them otherwise). At most ``limit`` events
    and as many attribute values are kept (the oldest go first), each by identity, with the object itself
    so that its id is not reused."""

    def __init__(self, converter: cattrs.Converter, limit: int = 50_000) -> None:
        self._converter = converter
        self._events: Bounded[int, tuple[OrderEvent, str]] = Bounded(limit)
        self._parts: Bounded[int, tuple[object, str]] = Bounded(limit)
        # per class: how to write it attribute by attribute, or None to write it whole
        self._plans: dict[type, Callable[[Any], str] | None] = {}
        self._texts = TextEncoders(converter)

    def event(self, event: OrderEvent) -> str:
        """``to_json(event)``."""
        entry = self._events.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        text = self._text(event, self._event_whole)
        self._events.put(id(event), (event, text))
        return text

    def order(self, order: Order) -> str:
        """``to_json(order)``."""
        return self._text(order, self._order_whole)

    def position(self, position: StockPosition) -> str:
        """``to_json(position)``."""
        return self._text(position, self._whole)

    def position_row(self, position: StockPosition) -> str:
        """``to_json`` of ``position`` with no reservations: the body of its row in a store that keeps
        each reservation in a row of its own (see :func:`reservation_changes`), so that writing a position
        costs the same however many orders hold units of it."""
        if not position.reservations:
            return self.position(position)
        shell = position.clone()
        shell.reservations = _NO_RESERVATIONS
        return self.position(shell)

    def reservation(self, reservation: Reservation) -> str:
        """``to_json(reservation)``, kept by identity (a reservation is immutable, and replaced when it
        changes)."""
        return self._kept(reservation, self._texts.for_type(Reservation))

    def entry(self, entry: LedgerEntry) -> str:
        """``to_json(entry)`` for a ledger entry."""
        return self._texts.text(entry)

    def _text(self, obj: Any, whole: Callable[[Any], str]) -> str:
        cls = type(obj)
        plan: Callable[[Any], str] | None = self._plans.get(cls, _UNPLANNED)
        if plan is _UNPLANNED:
            text = whole(obj)
            try:
                # planned again once it agrees, with the encoders checked on the way (one call fewer each)
                agrees = self._plan(cls)(obj) == text
                plan = self._plan(cls) if agrees else None
            except Exception:  # any failure: write this class whole, as to_json would
                plan = None
            self._plans[cls] = plan
            return text
        if plan is None:
            return whole(obj)
        return plan(obj)

    def _plan(self, cls: type) -> Callable[[Any], str]:
        """The writer of ``cls`` attribute by attribute (see :meth:`_fields`), generated as one
        function."""
        namespace: dict[str, Any] = {**GENERATED_NAMES, "_kept": self._kept, "_event": self.event}
        hints = typing.get_type_hints(cls)
        pieces = []
        for i, (key, prefix, encode, immutable) in enumerate(self._fields(cls)):
            if not key.isidentifier() or keyword.iskeyword(key):
                raise ValueError(f"cannot write attribute {key!r} by name")
            head = ("{" if i == 0 else ", ") + prefix
            if encode is None:  # an order's history: the kept text of its events
                pieces.append(f"{head + '['!r}, ', '.join([_event(ev) for ev in o.{key}]), ']'")
                continue
            head = repr(head)
            namespace[f"_e{i}"] = encode
            if immutable:
                call = f"_kept(o.{key}, _e{i})"
            elif key in hints and encode is self._texts.for_type(hints[key]):  # its type's: maybe inline
                call = self._texts.expression(hints[key], f"o.{key}", f"_e{i}")
            else:
                call = f"_e{i}(o.{key})"
            pieces.append(f"{head}, {call}")
        if not pieces:
            return lambda _: "{}"
        # one join: a chain of + would copy the text written so far at every attribute
        source = f"def write(o):\n    return ''.join(({', '.join(pieces)}, '}}'))\n"
        exec(compile(source, f"<stored json of {cls.__qualname__}>", "exec"), namespace)
        write: Callable[[Any], str] = namespace["write"]
        return write

    def _fields(self, cls: type) -> list[_Field]:
        """How to write ``cls`` attribute by attribute: an order's attributes but its lifecycle and
        persistence bookkeeping, a position's but its bookkeeping, an event's with its ``type``."""
        hints = typing.get_type_hints(cls)
        encoder = self._texts.for_type
        if cls is Order:
            return [
                (k, _dumps(k) + ": ", None if k == "history" else encoder(hints[k]), k in _ORDER_KEPT)
                for k in _ORDER_KEYS
            ]
        if cls is StockPosition:
            return [
                (
                    k,
                    _dumps(k) + ": ",
                    self._mapping(hints[k]) if k in _POSITION_MAPS else encoder(hints[k]),
                    False,
                )
                for k in _POSITION_KEYS
            ]
        type_text = _dumps(cls.__name__)
        plan: list[_Field] = [("type", '"type": ', lambda _: type_text, False)]
        for a in attrs.fields(cls):
            hint = hints[a.name]
            kept = typing.get_origin(hint) is tuple or hint in _KEPT_TYPES
            plan.append((a.name, _dumps(a.name) + ": ", encoder(hint), kept))
        return sorted(plan, key=lambda f: f[0])

    def _mapping(self, hint: Any) -> Callable[[Any], str]:
        """The encoder of a mapping of ``str`` to immutable values (a position's reservations, its
        supply), the text of each value kept by identity: a position's body holds every open reservation,
        most of them written before. The supply, an immutable :class:`Supplies` that copies of a position
        share until it changes, is kept whole by identity too."""
        if hint is Reservations:
            value_type: Any = Reservation
        elif hint is Supplies:
            value_type = Supply
        else:
            value_type = typing.get_args(hint)[1]
        whole, item = self._texts.for_type(hint), self._texts.for_type(value_type)
        kept = self._kept
        plain = hint if hint in (Reservations, Supplies) else dict

        def encode(value: Any) -> str:
            if type(value) is not plain or not all(type(k) is str for k in value):
                return whole(value)
            return (
                "{"
                + ", ".join([encode_str(k) + ": " + kept(v, item) for k, v in sorted(value.items())])
                + "}"
            )

        if hint is Supplies:
            return lambda value: kept(value, encode) if type(value) is Supplies else encode(value)
        return encode

    def _kept(self, value: Any, encode: Callable[[Any], str]) -> str:
        """``encode(value)`` for an immutable value, kept by identity."""
        entry = self._parts.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        text = encode(value)
        self._parts.put(id(value), (value, text))
        return text

    def _whole(self, obj: Any) -> str:
        return to_json(obj, converter=self._converter)

    def _event_whole(self, event: OrderEvent) -> str:
        return _dumps(self._converter.unstructure(event))

    def _order_whole(self, order: Order) -> str:
        """The order without its history, encoded as a whole, and the kept text of each event of the
        history put in its place (keys are sorted, so ``history`` sits between those before and after
        it)."""
        shell = object.__new__(Order)
        for name in _ORDER_ATTRIBUTES:
            object.__setattr__(shell, name, getattr(order, name))
        object.__setattr__(shell, "history", [])
        data = self._converter.unstructure(shell)
        if not isinstance(data, dict) or data.get("history") != []:  # a converter of its own making
            return to_json(order, converter=self._converter)
        head = {k: v for k, v in data.items() if k < "history"}
        tail = {k: v for k, v in data.items() if k > "history"}
        parts = [_dumps(head)[1:-1]] if head else []
        parts.append('"history": [' + ", ".join([self.event(ev) for ev in order.history]) + "]")
        if tail:
            parts.append(_dumps(tail)[1:-1])
        return "{" + ", ".join(parts) + "}"


_UNPLANNED: Any = object()


#: a position's attributes written as JSON, in key order (not its persistence bookkeeping), and those that
#: map keys to immutable values
_POSITION_KEYS = tuple(
    sorted(
        a.name
        for a in attrs.fields(StockPosition)
        if a.name not in {"persisted_version", "_recorded", "_held_sum"}
    )
)


_POSITION_MAPS = frozenset({"reservations", "supply"})


_NO_RESERVATIONS = Reservations()


_KEPT_TYPES = (Address, CustomerRef, Address | None, CustomerRef | None)


def _dumps(data: Any) -> str:
    """JSON text as :func:`to_json` writes it."""
    return dumps_sorted(data)


def find_in_document(
    document: object, bad: Callable[[object], bool], path: str = ""
) -> tuple[str, object] | None:
    """The path (``holds[0].message``; ``path`` for the document itself) and value of the first part of a
    decoded JSON document, keys included, that ``bad`` picks: what a store names when it cannot keep a value
    of a body it was given."""
    if isinstance(document, dict):
        for key, item in document.items():
            inner = f"{path}.{key}" if path else str(key)
            found = find_in_document(key, bad, inner) or find_in_document(item, bad, inner)
            if found is not None:
                return found
        return None
    if isinstance(document, list):
        for i, item in enumerate(document):
            found = find_in_document(item, bad, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return (path, document) if bad(document) else None
