"""The contract of orders, the outbox and idempotency keys."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import attrs
import pytest

from ordercore.clock import ManualClock
from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    IdempotencyConflict,
    InvalidValue,
    OrderNotFound,
    StoreUnavailable,
)
from ordercore.ids import SequentialIds
from ordercore.lifecycle import OrderStatus
from ordercore.lines import NewLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import (
    IdempotencyRecord,
    Store,
    UnitOfWork,
)
from ordercore.service.bootstrap import bootstrap
from ordercore.service.commands import HoldOrder, PlaceOrder
from ordercore.testing.contracts._support import (
    _ACTOR,
    _ADDRESS,
    _AT,
    ContractBase,
    _one_unit,
    _order,
    _together,
)
from ordercore.values import (
    MAX_QUANTITY,
    Channel,
    CustomerId,
    CustomerRef,
    OrderId,
    Sku,
)


class OrderContract(ContractBase):
    """Orders, their events in the outbox, and idempotency keys."""

    # -- orders -------------------------------------------------------------------------------------------
    def test_committed_order_reads_back_equal(self, store: Store) -> None:
        order = _order()
        self._add(store, order)
        with store.unit_of_work() as uow:
            loaded = uow.orders.get(OrderId("O-1"))
        assert loaded == order
        assert loaded.history == order.history
        assert loaded.persisted_version == loaded.version == 2
        assert loaded.new_events() == []

    def test_nothing_is_stored_without_commit(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(_order())
        with store.unit_of_work() as uow:
            assert uow.orders.find(OrderId("O-1")) is None
            with pytest.raises(OrderNotFound):
                uow.orders.get(OrderId("O-1"))

    def test_an_error_inside_the_unit_rolls_back(self, store: Store) -> None:
        self._add(store, _order())
        with pytest.raises(RuntimeError), store.unit_of_work() as uow:
            order = uow.orders.get(OrderId("O-1"))
            order.accept(actor=_ACTOR, at=_AT)
            uow.orders.save(order)
            raise RuntimeError("boom")
        with store.unit_of_work() as uow:
            assert uow.orders.get(OrderId("O-1")).status == OrderStatus.PLACED

    def test_changes_are_invisible_to_others_until_commit(self, store: Store) -> None:
        self._add(store, _order())
        with store.unit_of_work() as writer:
            order = writer.orders.get(OrderId("O-1"))
            order.accept(actor=_ACTOR, at=_AT)
            writer.orders.save(order)
            with store.unit_of_work() as reader:
                assert reader.orders.get(OrderId("O-1")).status == OrderStatus.PLACED
            writer.commit()
        with store.unit_of_work() as reader:
            assert reader.orders.get(OrderId("O-1")).status == OrderStatus.ACCEPTED

    def test_concurrent_changes_conflict_and_the_first_wins(self, store: Store) -> None:
        self._add(store, _order())
        with store.unit_of_work() as first, store.unit_of_work() as second:
            a = first.orders.get(OrderId("O-1"))
            b = second.orders.get(OrderId("O-1"))
            a.accept(actor=_ACTOR, at=_AT)
            b.reject(actor=_ACTOR, at=_AT, reason="late")
            first.orders.save(a)
            second.orders.save(b)
            first.commit()
            with pytest.raises(ConcurrencyConflict):
                second.commit()
        with store.unit_of_work() as uow:
            stored = uow.orders.get(OrderId("O-1"))
        assert stored.status == OrderStatus.ACCEPTED
        assert stored.version == 3

    def test_a_failed_commit_stores_none_of_its_changes(self, store: Store) -> None:
        self._add(store, _order("O-1"))
        with store.unit_of_work() as stale:
            self._stale_change(store, stale)
            stale.orders.add(_order("O-2"))
            with pytest.raises(ConcurrencyConflict):
                stale.commit()
        with store.unit_of_work() as uow:
            assert uow.orders.find(OrderId("O-2")) is None
            assert not uow.orders.get(OrderId("O-1")).holds

    def test_duplicate_order_id_is_refused(self, store: Store) -> None:
        self._add(store, _order("O-1"))
        with pytest.raises(DuplicateOrder), store.unit_of_work() as uow:
            uow.orders.add(_order("O-1"))
            uow.commit()

    def test_duplicate_external_reference_is_refused(self, store: Store) -> None:
        self._add(store, _order("O-1", external_ref="EXT-9"))
        with pytest.raises(DuplicateOrder), store.unit_of_work() as uow:
            uow.orders.add(_order("O-2", external_ref="EXT-9"))
            uow.commit()
        # the same reference from another channel is another order
        self._add(store, _order("O-3", external_ref="EXT-9", channel="edi"))
        with store.unit_of_work() as uow:
            found = uow.orders.find_by_external_ref(Channel("web"), "EXT-9")
            assert found is not None and found.id == OrderId("O-1")
            assert uow.orders.find_by_external_ref(Channel("web"), "nope") is None

    def test_list_ids_filters_by_status_and_pages(self, store: Store) -> None:
        for i in range(1, 6):
            order = _order(f"O-{i}")
            if i % 2 == 0:
                order.accept(actor=_ACTOR, at=_AT)
            self._add(store, order)
        with store.unit_of_work() as uow:
            assert [o.value for o in uow.orders.list_ids()] == ["O-1", "O-2", "O-3", "O-4", "O-5"]
            assert [o.value for o in uow.orders.list_ids(status=OrderStatus.ACCEPTED)] == ["O-2", "O-4"]
            assert [o.value for o in uow.orders.list_ids(after=OrderId("O-3"), limit=1)] == ["O-4"]

    def test_concurrent_commands_from_threads_lose_no_update(self, store: Store) -> None:
        threads, holds = 4, 10
        app = bootstrap(store, clock=ManualClock(_AT), ids=SequentialIds())
        order_id = app.handle(_one_unit()).order_id

        def hold(n: int, k: int) -> None:
            app.handle(HoldOrder(order_id=order_id, code=f"T{n}-{k}"))

        _together(threads, holds, hold)
        order = app.get_order(order_id)
        assert len(order.holds) == threads * holds  # every hold is there, none overwritten
        assert [e.sequence for e in order.history] == list(range(1, order.version + 1))
        assert order.version == 2 + threads * holds

    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (lambda uow: uow.orders.get("O-1"), "order_id"),
            (lambda uow: uow.orders.find(None), "order_id"),
            (lambda uow: uow.orders.find_by_external_ref("web", "R-1"), "channel"),
            (lambda uow: uow.orders.list_ids(status="placed"), "status"),
            (lambda uow: uow.orders.list_ids(after="O-1"), "after"),
            (lambda uow: uow.orders.list_ids(limit="10"), "limit"),
            (lambda uow: uow.outbox.pending(limit=None), "limit"),
            (lambda uow: uow.outbox.mark_published("O-1#1"), "event_ids"),
            (lambda uow: uow.outbox.mark_published([1]), "event_ids[0]"),
        ],
    )
    def test_a_malformed_argument_is_refused_naming_it_and_the_unit_stays_usable(
        self, store: Store, call: Callable[[UnitOfWork], object], field: str
    ) -> None:
        self._add(store, _order("O-1"))
        with store.unit_of_work() as uow:
            with pytest.raises(InvalidValue) as info:
                call(uow)
            assert info.value.field == field
            assert uow.orders.get(OrderId("O-1")).id == OrderId("O-1")  # nothing broken by it
            assert uow.orders.list_ids() == [OrderId("O-1")]

    def test_an_order_read_is_the_callers_own(self, store: Store) -> None:
        # whatever a caller does to an order it read and does not save (change its attributes, record an
        # event on it, try the attributes of its lines and of its creation event) reaches no other reader,
        # however the store keeps what it read before
        order = Order.create(
            order_id=OrderId("O-1"),
            channel=Channel("web"),
            customer=CustomerRef(CustomerId("C-1")),
            currency="EUR",
            shipping_address=_ADDRESS,
            lines=[NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR"), attributes={"gift": "no"})],
            attributes={"campaign": "spring"},
            actor=_ACTOR,
            at=_AT,
        )
        order.place(actor=_ACTOR, at=_AT)
        self._add(store, order)
        with store.unit_of_work() as uow:
            mine = uow.orders.get(OrderId("O-1"))
        mine.attributes["campaign"] = "autumn"
        mine.hold("MINE", actor=_ACTOR, at=_AT)
        for attributes in (mine.lines[0].attributes, mine.history[0].attributes):  # type: ignore[attr-defined]
            with contextlib.suppress(TypeError):  # FrozenAttributes refuse; a store's own decoding may not
                attributes["gift"] = "yes"
        for _ in range(2):  # a store keeping copies hands out the kept one the second time
            with store.unit_of_work() as uow:
                again = uow.orders.get(OrderId("O-1"))
            assert again == order and again.history == order.history
            assert again.attributes == {"campaign": "spring"} and again.holds == ()
            assert again.lines[0].attributes == {"gift": "no"}
            assert again.history[0].attributes == {"campaign": "spring"}  # type: ignore[attr-defined]

    def test_text_of_any_script_and_the_largest_quantity_read_back_whole(self, store: Store) -> None:
        text = "Łódź — 東京 🚚 \u05e9\u05dc\u05d5\u05dd e\u0301 \t 'quotes' \"and\" \\ back;slash %s ?"
        order = Order.create(
            order_id=OrderId("O-1"),
            channel=Channel("web"),
            customer=CustomerRef(CustomerId("C-1"), segment=text),
            currency="EUR",
            shipping_address=attrs.evolve(_ADDRESS, line2=text),
            lines=[NewLine(Sku("SKU-1"), MAX_QUANTITY, Money.of("0.01", "EUR"), description=text)],
            external_ref=text,
            attributes={text: text},
            actor=_ACTOR,
            at=_AT,
        )
        order.place(actor=_ACTOR, at=_AT)
        order.hold("CHECK", actor=_ACTOR, at=_AT, message=text)
        self._add(store, order)
        with store.unit_of_work() as uow:
            loaded = uow.orders.get(OrderId("O-1"))
            assert uow.orders.find_by_external_ref(Channel("web"), text) == loaded
        assert loaded == order and loaded.history == order.history
        assert loaded.lines[0].qty.ordered == MAX_QUANTITY and loaded.holds[0].message == text

    def test_a_limit_beyond_64_bits_lists_every_row(self, store: Store) -> None:
        for i in (1, 2):
            self._add(store, _order(f"O-{i}"))
        with store.unit_of_work() as uow:
            assert [o.value for o in uow.orders.list_ids(limit=2**64)] == ["O-1", "O-2"]
            assert [r.event.event_id for r in uow.outbox.pending(limit=2**64)][:2] == ["O-1#1", "O-1#2"]

    def test_a_closed_store_refuses_work(self, store: Store) -> None:
        store.close()
        with pytest.raises(StoreUnavailable), store.unit_of_work() as uow:
            uow.orders.list_ids()

    # -- outbox -------------------------------------------------------------------------------------------
    def test_outbox_holds_committed_events_in_commit_order(self, store: Store) -> None:
        first, second = _order("O-1"), _order("O-2")
        self._add(store, first)
        self._add(store, second)
        with store.unit_of_work() as uow:
            uow.orders.add(_order("O-3"))  # never committed: its events must not appear
        with store.unit_of_work() as uow:
            pending = uow.outbox.pending(limit=10)
        assert [r.event.event_id for r in pending] == ["O-1#1", "O-1#2", "O-2#1", "O-2#2"]
        positions = [r.position for r in pending]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)

    def test_published_events_leave_the_outbox(self, store: Store) -> None:
        self._add(store, _order("O-1"))
        with store.unit_of_work() as uow:
            uow.outbox.mark_published(["O-1#1"])
            uow.commit()
        with store.unit_of_work() as uow:
            uow.outbox.mark_published(["O-1#2"])  # not committed: stays pending
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#2"]

    # -- idempotency keys ---------------------------------------------------------------------------------
    def _record(self, key: str = "K-1", order_id: str = "O-1", fingerprint: str = "f1") -> IdempotencyRecord:
        return IdempotencyRecord(key, OrderId(order_id), fingerprint, _AT)

    def test_an_idempotency_record_is_stored_with_its_order_and_reads_back_equal(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") is None
            uow.orders.add(_order("O-1"))
            uow.idempotency.add(self._record())
            assert uow.idempotency.get("K-1") == self._record()  # staged records are seen in the unit
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") == self._record()
            assert uow.idempotency.get("K-2") is None

    def test_an_idempotency_record_without_commit_or_with_a_failed_commit_is_not_stored(
        self, store: Store
    ) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(_order("O-1"))
            uow.idempotency.add(self._record())
        self._add(store, _order("O-1"))
        with pytest.raises(DuplicateOrder), store.unit_of_work() as uow:
            uow.idempotency.add(self._record("K-2"))
            uow.orders.add(_order("O-1"))  # refused: the key goes with it
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") is None and uow.idempotency.get("K-2") is None

    def test_a_commit_refused_for_a_stale_order_stores_none_of_its_keys_nor_its_new_orders(
        self, store: Store
    ) -> None:
        self._add(store, _order("O-1"))
        with store.unit_of_work() as stale:
            self._stale_change(store, stale)  # someone else changed O-1 meanwhile
            stale.orders.add(_order("O-2"))
            stale.idempotency.add(self._record("K-2", order_id="O-2"))
            with pytest.raises(ConcurrencyConflict):
                stale.commit()
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-2") is None
            assert uow.orders.find(OrderId("O-2")) is None
            assert uow.orders.get(OrderId("O-1")).holds == ()  # the other's change, not this one's

    def test_a_taken_idempotency_key_is_refused_as_a_conflict(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(_order("O-1"))
            uow.idempotency.add(self._record())
            uow.commit()
        with pytest.raises(ConcurrencyConflict), store.unit_of_work() as uow:
            uow.idempotency.add(self._record(order_id="O-1", fingerprint="f2"))
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") == self._record()

    def test_concurrent_units_with_one_idempotency_key_commit_once(self, store: Store) -> None:
        with store.unit_of_work() as first, store.unit_of_work() as second:
            assert first.idempotency.get("K-1") is None and second.idempotency.get("K-1") is None
            first.orders.add(_order("O-1"))
            first.idempotency.add(self._record(order_id="O-1"))
            second.orders.add(_order("O-2"))
            second.idempotency.add(self._record(order_id="O-2", fingerprint="f2"))
            first.commit()
            with pytest.raises(ConcurrencyConflict):
                second.commit()
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") == self._record(order_id="O-1")
            assert uow.orders.find(OrderId("O-2")) is None  # the loser stored nothing

    def test_a_key_may_name_an_order_stored_before(self, store: Store) -> None:
        self._add(store, _order("O-1"))
        with store.unit_of_work() as uow:
            uow.idempotency.add(self._record())
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") == self._record()

    def test_placing_an_order_with_an_idempotency_key_is_idempotent(self, store: Store) -> None:
        app = bootstrap(store, clock=ManualClock(_AT), ids=SequentialIds())

        def place(quantity: int) -> PlaceOrder:
            return PlaceOrder(
                channel=Channel("web"),
                customer=CustomerRef(CustomerId("C-1")),
                currency="EUR",
                shipping_address=_ADDRESS,
                lines=[NewLine(Sku("SKU-1"), quantity, Money.of("9.99", "EUR"))],
                idempotency_key="K-1",
            )

        first = app.handle(place(1))
        again = app.handle(place(1))
        assert (again.order_id, again.events) == (first.order_id, ())
        with pytest.raises(IdempotencyConflict) as info:
            app.handle(place(2))
        assert info.value.existing_order_id == first.order_id and info.value.key == "K-1"
        assert app.list_orders() == [first.order_id]
