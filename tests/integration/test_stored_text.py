"""What one store takes every store takes, and what an order hands out cannot change what a store keeps.

On every shipped store: text no store can keep (a NUL character, which PostgreSQL's text refuses; a lone
surrogate, which no UTF-8 encoding holds) and quantities beyond a 32-bit column are refused before any
store sees them, as InvalidValue naming the field, with nothing changed; a query's limit beyond a 64-bit
integer means "every row"; and the attributes of a line or of the creation event of an order read from a
store cannot be changed through it (the store's kept copies share them)."""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable, Iterator

import pytest

from ordercore import (
    AcceptOrder,
    CountStock,
    ManualClock,
    NewLine,
    OrderCore,
    OrderStatus,
    ReceiveStock,
    SequentialIds,
    Sku,
    bootstrap,
)
from ordercore.errors import InvalidQuantity, InvalidValue, ValidationFailed
from ordercore.lines import FrozenAttributes
from ordercore.service.commands import HoldOrder
from ordercore.values import MAX_QUANTITY
from tests.integration._every_store import store_url
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import AT, eur, place_command

__all__ = ["admin", "store_url", "url"]  # fixtures: every store, and the PostgreSQL tests' schema

NUL = "a\x00b"
LONE_SURROGATE = os.fsdecode(b"caf\xe9")  # as os.listdir gives an undecodable name: 'caf\udce9'


@pytest.fixture
def app(store_url: str) -> Iterator[OrderCore]:
    application = bootstrap(store_url, clock=ManualClock(AT), ids=SequentialIds())
    yield application
    application.close()


def _place(app: OrderCore, **kw: object) -> str:
    return str(app.handle(place_command(**kw)).order_id)


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
def test_a_hold_message_no_store_can_keep_is_refused_naming_it(app: OrderCore, bad: str) -> None:
    oid = _place(app)
    before = app.get_order(oid)
    with pytest.raises(InvalidValue) as e:
        app.handle(HoldOrder(order_id=oid, code="CHECK", message=bad))
    assert e.value.field == "message"
    after = app.get_order(oid)
    assert after.version == before.version and not after.holds


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
def test_a_stock_reason_no_store_can_keep_is_refused_naming_it(app: OrderCore, bad: str) -> None:
    with pytest.raises(InvalidValue) as e:
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=5, reason=bad))
    assert e.value.field == "reason"
    assert app.stock("WH-1", "MUG") is None


@pytest.mark.parametrize(
    ("what", "field"),
    [
        (lambda: {"lines": [NewLine(Sku("MUG"), 1, eur("9.99"), description=NUL)]}, "description"),
        (lambda: {"lines": [NewLine(Sku("MUG"), 1, eur("9.99"), attributes={"g": LONE_SURROGATE})]}, "'g'"),
        (lambda: {"attributes": {LONE_SURROGATE: "x"}}, "attributes"),
        (lambda: {"external_ref": NUL}, "external_ref"),
    ],
    ids=["line-description", "line-attribute", "order-attribute", "external-ref"],
)
def test_an_order_holding_text_no_store_can_keep_is_refused_naming_the_field(
    app: OrderCore, what: Callable[[], dict[str, object]], field: str
) -> None:
    with pytest.raises((InvalidValue, ValidationFailed)) as e:
        _place(app, **what())  # the line itself, made in the test, is refused as the channel builds it
    assert field in str(e.value)
    assert app.list_orders() == []


def test_text_every_store_can_keep_goes_in_whole(app: OrderCore) -> None:
    text = "Łódź, straße 1 — 東京 🚚"
    oid = _place(
        app, lines=[NewLine(Sku("MUG"), 1, eur("9.99"), description=text, attributes={"note": text})]
    )
    app.handle(HoldOrder(order_id=oid, code="CHECK", message=text))
    order = app.get_order(oid)
    assert order.lines[0].description == text and order.lines[0].attributes == {"note": text}
    assert order.holds[0].message == text


def test_quantities_beyond_a_32_bit_column_are_refused_on_every_store(app: OrderCore) -> None:
    with pytest.raises(InvalidQuantity) as e:
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=MAX_QUANTITY + 1, reason="too many"))
    assert e.value.field == "quantity"
    assert app.stock("WH-1", "MUG") is None
    with pytest.raises((InvalidQuantity, ValidationFailed)):
        _place(app, lines=[NewLine(Sku("MUG"), MAX_QUANTITY + 1, eur("0.01"))])
    app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=MAX_QUANTITY, reason="the most"))
    position = app.stock("WH-1", "MUG")
    assert position is not None and position.on_hand == MAX_QUANTITY


@pytest.mark.parametrize("first", [MAX_QUANTITY, MAX_QUANTITY - 5])
def test_receipts_that_would_take_stock_on_hand_past_the_most_a_store_keeps_are_refused(
    app: OrderCore, first: int
) -> None:
    app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=first, reason="first"))
    before = app.stock("WH-1", "MUG")
    with pytest.raises(InvalidQuantity, match="beyond the most a position holds") as e:
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=6, reason="one too many"))
    assert e.value.field == "quantity" and e.value.value == 6
    position = app.stock("WH-1", "MUG")
    assert position == before and position is not None and position.on_hand == first  # as it was
    if first < MAX_QUANTITY:  # up to the most is taken
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=MAX_QUANTITY - first, reason="rest"))
        assert app.stock("WH-1", "MUG").on_hand == MAX_QUANTITY  # type: ignore[union-attr]
    app.handle(CountStock(node_id="WH-1", sku="MUG", on_hand=0, reason="counted"))  # correctable everywhere
    position = app.stock("WH-1", "MUG")
    assert position is not None and position.on_hand == 0


def test_a_limit_beyond_a_64_bit_integer_means_every_row(app: OrderCore) -> None:
    oid = _place(app)
    app.handle(HoldOrder(order_id=oid, code="CHECK", message="look"))
    assert [str(i) for i in app.list_orders(limit=2**64)] == [oid]
    assert [h.order_id for h in app.held_orders(limit=2**64)] == [app.get_order(oid).id]
    assert len(app.orders_aging(OrderStatus.ON_HOLD, limit=2**64)) == 1
    assert app.expire_reservations(limit=2**64) == 0


def test_the_attributes_an_order_hands_out_cannot_change_what_the_store_keeps(app: OrderCore) -> None:
    oid = _place(
        app,
        lines=[NewLine(Sku("MUG"), 1, eur("9.99"), attributes={"gift": "no"})],
        attributes={"campaign": "spring"},
    )
    order = app.get_order(oid)
    line_attributes, created = order.lines[0].attributes, order.history[0]
    with pytest.raises(TypeError):
        line_attributes["gift"] = "yes"
    with pytest.raises(TypeError):
        created.attributes.update(x="caller-only")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        del line_attributes["gift"]
    changed = dict(line_attributes) | {"gift": "yes"}  # a changed copy is the caller's own
    assert changed == {"gift": "yes"} and line_attributes == {"gift": "no"}
    order.attributes["campaign"] = "autumn"  # the aggregate's own attributes are its copy's to change
    app.handle(AcceptOrder(order_id=oid))
    again = app.get_order(oid)
    assert again.lines[0].attributes == {"gift": "no"}
    assert again.history[0].attributes == {"campaign": "spring"}
    assert again.attributes == {"campaign": "spring"}
    assert isinstance(again.lines[0].attributes, FrozenAttributes)
    assert isinstance(again.history[0].attributes, FrozenAttributes)


def test_an_order_with_frozen_attributes_copies_and_pickles(app: OrderCore) -> None:
    oid = _place(app, lines=[NewLine(Sku("MUG"), 1, eur("9.99"), attributes={"gift": "no"})])
    order = app.get_order(oid)
    for twin in (copy.deepcopy(order), pickle.loads(pickle.dumps(order))):
        assert twin.lines == order.lines and twin.history == order.history
        assert isinstance(twin.lines[0].attributes, FrozenAttributes)
