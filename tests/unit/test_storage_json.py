"""StoredJson: the text stores write for orders, events and stock positions is exactly to_json's, with each
event's text kept by identity so that a history is not encoded again on every write; TextEncoders: text
written directly from each type's attributes, again exactly to_json's."""

import threading
from datetime import timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore import Address, CustomerRef, Money, Order, Sku, make_converter
from ordercore.errors import OrderCoreError
from ordercore.events import NodeAllocation
from ordercore.inventory import StockPosition, Supply
from ordercore.lines import LineQuantities, OrderLine
from ordercore.serialization import TextEncoders, to_json
from ordercore.storage import StoredJson
from ordercore.testing.strategies import orders

from .factories import ACTOR, AT, make_order

HEAVY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONVERTER = make_converter()


def _grown(order: Order) -> Order:
    """``order`` with a few more events: a hold applied and released."""
    order.hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=1), message="a look at it")
    order.release_hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=2))
    return order


@HEAVY
@given(orders())
def test_an_order_is_written_as_to_json_writes_it(order: Order) -> None:
    stored = StoredJson(CONVERTER)
    expected = to_json(order, converter=CONVERTER)
    assert stored.order(order) == expected
    assert stored.order(order) == expected  # the events' kept text
    for event in order.history:
        assert stored.event(event) == to_json(event, converter=CONVERTER)


def test_a_history_that_grows_is_written_whole_and_in_order() -> None:
    stored = StoredJson(CONVERTER)
    order = make_order()
    stored.order(order)
    order = _grown(order)
    assert stored.order(order) == to_json(order, converter=CONVERTER)


def test_keys_around_history_and_awkward_values_are_kept_in_place() -> None:
    # attributes sort before history; a value that looks like a history, quotes, control characters and
    # non-ASCII text must come out as to_json writes them
    stored = StoredJson(CONVERTER)
    order = make_order()
    order.attributes = {"history": '"history": []', "nul": "\x00", "name": "Müller ✓", "z": '"}'}
    assert stored.order(order) == to_json(order, converter=CONVERTER)


def test_events_are_kept_by_identity_within_the_limit() -> None:
    stored = StoredJson(CONVERTER, limit=2)
    order = _grown(make_order())
    assert len(order.history) > 2
    for _ in range(2):  # more events than kept: older ones are encoded again, never mixed up
        for event in order.history:
            assert stored.event(event) == to_json(event, converter=CONVERTER)
    assert stored.order(order) == to_json(order, converter=CONVERTER)


def test_nothing_kept_with_limit_zero() -> None:
    stored = StoredJson(CONVERTER, limit=0)
    order = make_order()
    assert stored.order(order) == to_json(order, converter=CONVERTER)


def test_attributes_replaced_since_the_last_write_are_written_anew() -> None:
    # immutable attributes are kept by identity: a replaced one (other lines, holds) must not reuse the
    # text of the one it replaced, and an order of other content must not borrow another order's text
    stored = StoredJson(CONVERTER)
    order, other = make_order(), make_order()
    for _ in range(2):
        assert stored.order(order) == to_json(order, converter=CONVERTER)
    order.lines = order.lines[:1]
    order = _grown(order)
    order.attributes = {"gift": "yes"}
    assert stored.order(order) == to_json(order, converter=CONVERTER)
    other.lines = ()
    assert stored.order(other) == to_json(other, converter=CONVERTER)


# -- text written directly (TextEncoders): byte for byte to_json's, generated encoders in use ------------------
def _generated(encoder: object) -> bool:
    code = getattr(encoder, "__code__", None)
    return code is not None and code.co_filename.startswith("<text encoder of")


def test_every_event_and_value_of_full_lives_is_written_as_to_json_writes_it() -> None:
    from .test_serialization import cancelled_order, full_life_order, sourced_order

    texts = TextEncoders(CONVERTER)
    seen: set[type] = set()
    for order in (full_life_order(), sourced_order(), cancelled_order()):
        stored = StoredJson(CONVERTER)
        for _ in range(2):  # checked on first use, then generated
            for event in order.history:
                assert texts.text(event) == to_json(event, converter=CONVERTER)
                assert stored.event(event) == to_json(event, converter=CONVERTER)
                seen.add(type(event))
            for value in (*order.lines, *order.allocations, order.shipping_address, order.customer):
                assert texts.text(value) == to_json(value, converter=CONVERTER)
            assert stored.order(order) == to_json(order, converter=CONVERTER)
        assert all(stored._plans[type(ev)] is not None for ev in order.history)
        assert stored._plans[Order] is not None
    assert len(seen) >= 14
    for cls in (*seen, OrderLine, NodeAllocation, Address, CustomerRef, Money, LineQuantities):
        if cls is not Money:
            assert _generated(texts.for_type(cls)), cls


def test_a_thread_asking_for_an_encoder_another_is_building_waits_for_it_and_writes_the_text() -> None:
    # a stand-in used to be visible to other threads while a type's encoder was built: calling it looked
    # itself up again, and a commit on a new store failed with RecursionError
    texts = TextEncoders(CONVERTER)
    building, go = threading.Event(), threading.Event()
    compose = texts._composite

    def slow_composite(hint: object) -> object:
        if hint is OrderLine:
            building.set()
            go.wait(5)
        return compose(hint)

    texts._composite = slow_composite  # type: ignore[method-assign,assignment]
    line = make_order().lines[0]
    results: dict[str, object] = {}

    def encode(name: str) -> None:
        try:
            results[name] = texts.text(line)
        except BaseException as e:
            results[name] = e

    first = threading.Thread(target=encode, args=("first",))
    first.start()
    assert building.wait(5)
    second = threading.Thread(target=encode, args=("second",))
    second.start()
    second.join(0.3)  # asks while the first is building
    go.set()
    first.join(5)
    second.join(5)
    expected = to_json(line, converter=CONVERTER)
    assert results == {"first": expected, "second": expected}
    assert texts._building == {}


@attrs.frozen
class _Node:
    """A type that refers to itself, as a caller's own may."""

    name: str
    children: "tuple[_Node, ...]" = ()


def test_a_thread_reaching_a_type_being_built_through_one_of_its_parts_waits_for_it() -> None:
    texts = TextEncoders(CONVERTER)
    building, go = threading.Event(), threading.Event()
    generate = texts._generate

    def slow_generate(hint: Any, expression: str, parts: list[Any]) -> Any:
        out = generate(hint, expression, parts)
        if hint is _Node:  # its part, tuple[_Node, ...], is built and published already
            building.set()
            go.wait(5)
        return out

    texts._generate = slow_generate  # type: ignore[method-assign]
    tree = (_Node("a", (_Node("b"),)),)
    results: dict[str, object] = {}

    def encode(name: str, hint: Any) -> None:
        try:
            results[name] = texts.for_type(hint)(tree if hint != _Node else tree[0])
        except BaseException as e:
            results[name] = e

    first = threading.Thread(target=encode, args=("builder", _Node))
    first.start()
    assert building.wait(5)
    second = threading.Thread(target=encode, args=("other", tuple[_Node, ...]))
    second.start()
    second.join(0.3)  # reaches _Node's stand-in while _Node is being built
    go.set()
    first.join(5)
    second.join(5)
    assert results == {
        "builder": to_json(tree[0], converter=CONVERTER),
        "other": to_json(tree, converter=CONVERTER),
    }


# any text a store can keep: no NUL, no lone surrogate (every text check refuses those, see text_fault)
_STORABLE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@HEAVY
@given(
    orders(),
    st.text(_STORABLE, max_size=1000),
    st.text(_STORABLE, min_size=1, max_size=64).filter(str.strip),
)
def test_events_with_any_text_are_written_as_to_json_writes_them(
    order: Order, reason: str, code: str
) -> None:
    # any text a hold accepts (a code of 1 to 64 characters, not only spaces; a reason of up to 1,000)
    order.hold(code, actor=ACTOR, at=AT + timedelta(minutes=1), message=reason)
    texts = TextEncoders(CONVERTER)
    for _ in range(2):
        for event in order.history:
            assert texts.text(event) == to_json(event, converter=CONVERTER)
        for line in order.lines:
            assert texts.text(line) == to_json(line, converter=CONVERTER)


def test_a_converter_of_its_own_making_is_followed() -> None:
    # hooks that are not ordercore's: the generated encoders give way to them after their first check
    converter = make_converter()
    converter.register_unstructure_hook(Money, lambda m: f"{m.amount} {m.currency}")
    converter.register_unstructure_hook(Address, lambda a: {"where": [a.city, a.country]})
    texts, stored = TextEncoders(converter), StoredJson(converter)
    order = _grown(make_order())
    for _ in range(3):
        for event in order.history:
            assert texts.text(event) == to_json(event, converter=converter)
            assert stored.event(event) == to_json(event, converter=converter)
        assert stored.order(order) == to_json(order, converter=converter)


_KEYS = st.text(_STORABLE, min_size=1, max_size=20).filter(lambda k: k == k.strip() and bool(k))


@HEAVY
@given(
    st.lists(
        st.tuples(_KEYS, st.integers(1, 5), st.booleans(), _KEYS),
        max_size=12,
    )
)
def test_positions_and_ledger_entries_are_written_as_to_json_writes_them(
    reservations: list[tuple[str, int, bool, str]],
) -> None:
    # keys and references of any text (quotes, control characters, non-ASCII), reservations hard and soft
    stored = StoredJson(CONVERTER)
    position = StockPosition.open("N1", Sku("S-1"), at=AT, on_hand=1_000, reason="open")
    position.expect(Supply("PO-1", 5, AT.date() + timedelta(days=3)), at=AT)
    for i, (key, quantity, hard, reference) in enumerate(reservations):
        if position.reservation(key) is not None:
            continue
        at = AT + timedelta(minutes=i)
        position.reserve(
            key,
            quantity,
            reference=reference,
            at=at,
            hard=hard,
            expires_at=None if hard else at + timedelta(hours=1),
        )
        # each write: the kept text of earlier reservations, the new one encoded
        assert stored.position(position) == to_json(position, converter=CONVERTER)
        copy = position.clone()
        assert stored.position(copy) == to_json(copy, converter=CONVERTER)
    assert stored.position(position) == to_json(position, converter=CONVERTER)
    assert stored._plans[StockPosition] is not None  # written attribute by attribute, not whole
    for entry in position.new_entries():
        assert stored.entry(entry) == to_json(entry, converter=CONVERTER)


@HEAVY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["expect", "receive", "cancel", "reserve", "clone"]),
            st.sampled_from(["PO-1", "PO-2", 'T"R\n3']),  # few references, so that steps meet
            st.integers(1, 5),
        ),
        max_size=24,
    )
)
def test_a_position_whose_supply_changes_is_written_as_to_json_writes_it(
    steps: list[tuple[str, str, int]],
) -> None:
    # the supply's text is kept whole by identity: every change must give a new text, every copy the same
    stored = StoredJson(CONVERTER)
    position = StockPosition.open("N1", Sku("S-1"), at=AT, on_hand=1_000, reason="open")
    for i, (op, ref, units) in enumerate(steps):
        at = AT + timedelta(minutes=i)
        try:
            if op == "expect":
                position.expect(Supply(ref, units, AT.date() + timedelta(days=units)), at=at)
            elif op == "receive":
                position.receive(units, at=at, supply_ref=ref)
            elif op == "cancel":
                position.cancel_supply(ref, at=at, reason="late")
            elif op == "reserve":
                position.reserve(f"R-{i}", 1, reference=ref, at=at)
            else:
                position = position.clone()
        except OrderCoreError:
            pass  # refused, and nothing changed
        assert stored.position(position) == to_json(position, converter=CONVERTER)
        assert stored.position_row(position) == to_json(
            attrs.evolve(position, reservations={}), converter=CONVERTER
        )
