"""StoredJson: the text stores write for orders and events is exactly to_json's, with each event's text
kept by identity so that a history is not encoded again on every write."""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings

from ordercore import Order, make_converter
from ordercore.serialization import to_json
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
