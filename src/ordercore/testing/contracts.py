"""Contract suite for store adapters (requires pytest).

Subclass :class:`StoreContract` in your test module and provide a ``store`` fixture that yields a fresh,
empty store; pytest then runs every contract test against your adapter::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            s = MyStore(...)
            yield s
            s.close()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ordercore.clock import ManualClock
from ordercore.errors import ConcurrencyConflict, DuplicateOrder, OrderNotFound, StoreUnavailable
from ordercore.ids import SequentialIds
from ordercore.inventory import StockLevel
from ordercore.lifecycle import OrderStatus
from ordercore.lines import NewLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import Store
from ordercore.service.bootstrap import bootstrap
from ordercore.service.commands import HoldOrder, PlaceOrder
from ordercore.values import Actor, Address, Channel, CustomerId, CustomerRef, OrderId, Sku

__all__ = ["StoreContract"]

_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_ACTOR = Actor.system("contract")
_ADDRESS = Address(country="DE", postal_code="10115", city="Berlin", line1="Str. 1")


def _order(order_id: str = "O-1", *, external_ref: str | None = None, channel: str = "web") -> Order:
    order = Order.create(
        order_id=OrderId(order_id),
        channel=Channel(channel),
        customer=CustomerRef(CustomerId("C-1")),
        currency="EUR",
        shipping_address=_ADDRESS,
        lines=[
            NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR")),
            NewLine(Sku("SKU-2"), 1, Money.of("5", "EUR")),
        ],
        external_ref=external_ref,
        actor=_ACTOR,
        at=_AT,
    )
    order.place(actor=_ACTOR, at=_AT + timedelta(seconds=1))
    return order


class StoreContract:
    """Behaviour every :class:`~ordercore.ports.Store` must have."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("provide a `store` fixture that yields a fresh, empty store")

    def _add(self, store: Store, order: Order) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()

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
            old = stale.orders.get(OrderId("O-1"))
            with store.unit_of_work() as other:
                fresh = other.orders.get(OrderId("O-1"))
                fresh.accept(actor=_ACTOR, at=_AT)
                other.orders.save(fresh)
                other.commit()
            old.hold("CHECK", actor=_ACTOR, at=_AT)
            stale.orders.save(old)
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
        order_id = app.handle(
            PlaceOrder(
                channel=Channel("web"),
                customer=CustomerRef(CustomerId("C-1")),
                currency="EUR",
                shipping_address=_ADDRESS,
                lines=[NewLine(Sku("SKU-1"), 1, Money.of("9.99", "EUR"))],
            )
        ).order_id
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                barrier.wait()
                for k in range(holds):
                    while True:  # a caller retries on conflict, as a real service would
                        try:
                            app.handle(HoldOrder(order_id=order_id, code=f"T{n}-{k}"))
                            break
                        except ConcurrencyConflict:
                            continue
            except BaseException as e:  # reported below, from the test's own thread
                errors.append(e)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert errors == []
        order = app.get_order(order_id)
        assert len(order.holds) == threads * holds  # every hold is there, none overwritten
        assert [e.sequence for e in order.history] == list(range(1, order.version + 1))
        assert order.version == 2 + threads * holds

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

    # -- inventory ----------------------------------------------------------------------------------------
    def test_stock_levels_round_trip_with_optimistic_versions(self, store: Store) -> None:
        level = StockLevel(node_id="WH-1", sku=Sku("SKU-1"), on_hand=10)
        with store.unit_of_work() as uow:
            uow.inventory.save(level)
            uow.commit()
        with store.unit_of_work() as a, store.unit_of_work() as b:
            la = a.inventory.get("WH-1", Sku("SKU-1"))
            lb = b.inventory.get("WH-1", Sku("SKU-1"))
            assert la == lb == level
            assert la is not None and lb is not None
            a.inventory.save(la.reserve(3))
            b.inventory.save(lb.reserve(4))
            a.commit()
            with pytest.raises(ConcurrencyConflict):
                b.commit()
        with store.unit_of_work() as uow:
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert stored is not None and stored.reserved == 3 and stored.version == 2
            assert [s.node_id for s in uow.inventory.for_sku(Sku("SKU-1"))] == ["WH-1"]
            assert uow.inventory.get("WH-2", Sku("SKU-1")) is None
