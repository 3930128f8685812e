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
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest

from ordercore.clock import ManualClock
from ordercore.errors import (
    CapacityExhausted,
    ConcurrencyConflict,
    DuplicateOrder,
    IdempotencyConflict,
    InvalidTimestamp,
    InvalidValue,
    OrderNotFound,
    StoreUnavailable,
)
from ordercore.ids import SequentialIds
from ordercore.inventory import (
    EntryKind,
    FulfilmentNode,
    NodeDay,
    NodeKind,
    NodeStates,
    NodeStatus,
    ShippingCost,
    StockPosition,
    Supply,
    SupplyKind,
)
from ordercore.lifecycle import DEFAULT_LIFECYCLE, OrderStatus
from ordercore.lines import NewLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import (
    BackorderedLine,
    BackorderSummary,
    HeldOrder,
    Housekeeping,
    IdempotencyRecord,
    LapsedReservations,
    OrderAge,
    OrderDigest,
    OrderReports,
    RecentOrders,
    Store,
    UnitOfWork,
)
from ordercore.service.bootstrap import bootstrap
from ordercore.service.commands import AcceptOrder, HoldOrder, PlaceOrder, ReceiveStock, SourceOrder
from ordercore.storage import backorder_rows, hold_rows, status_since, summarise_backorders
from ordercore.values import (
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    LineId,
    OrderId,
    Sku,
)

__all__ = ["StoreContract"]

_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_DAY = date(2026, 3, 2)
_ACTOR = Actor.system("contract")
_ADDRESS = Address(country="DE", postal_code="10115", city="Berlin", line1="Str. 1")
_SHIPPING = ShippingCost("EUR", per_shipment=Decimal(5), per_unit_km=Decimal("0.01"))


def _together(threads: int, each: int, attempt: Callable[[int, int], object]) -> None:
    """Run ``attempt(n, k)`` for ``k`` in ``range(each)`` on ``threads`` threads released at once by a
    barrier; an attempt that raises ConcurrencyConflict is made again, as a caller would on a fresh read.
    Anything else a thread raises fails the calling test."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for k in range(each):
                while True:
                    try:
                        attempt(n, k)
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
    assert errors == [], errors


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


def _placement() -> PlaceOrder:
    """An order of 4 units of SKU-1 to Berlin."""
    return PlaceOrder(
        channel=Channel("web"),
        customer=CustomerRef(CustomerId("C-9")),
        currency="EUR",
        shipping_address=attrs.evolve(_ADDRESS, coordinates=GeoPoint(52.52, 13.40)),
        lines=[NewLine(Sku("SKU-1"), 4, Money.of("9.99", "EUR"))],
    )


def _placed_at(order_id: str, placed: datetime, customer: str = "C-1") -> Order:
    """A placed order (SKU-1 x 2 on line 1, SKU-2 x 1 on line 2), created a minute before ``placed``."""
    order = Order.create(
        order_id=OrderId(order_id),
        channel=Channel("web"),
        customer=CustomerRef(CustomerId(customer)),
        currency="EUR",
        shipping_address=_ADDRESS,
        lines=[
            NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR")),
            NewLine(Sku("SKU-2"), 1, Money.of("5", "EUR")),
        ],
        actor=_ACTOR,
        at=placed - timedelta(minutes=1),
    )
    order.place(actor=_ACTOR, at=placed)
    return order


def _reports(uow: UnitOfWork) -> OrderReports:
    assert isinstance(uow.orders, OrderReports), "the order repository keeps no read models"
    return uow.orders


def _recent(uow: UnitOfWork, customer: str, since: datetime) -> list[tuple[str, datetime]]:
    """(order id, placed at) of the customer's recent orders, as the store lists them."""
    recent = uow.orders
    assert isinstance(recent, RecentOrders), "the order repository keeps no recent orders"
    return [(d.order_id.value, d.placed_at) for d in recent.placed_since(CustomerId(customer), since)]


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

    def _stale_change(self, store: Store, stale: UnitOfWork) -> None:
        """Stage in ``stale`` a hold on O-1 as read there, after another unit accepted it and committed:
        ``stale`` then fails to commit."""
        old = stale.orders.get(OrderId("O-1"))
        with store.unit_of_work() as other:
            fresh = other.orders.get(OrderId("O-1"))
            fresh.accept(actor=_ACTOR, at=_AT)
            other.orders.save(fresh)
            other.commit()
        old.hold("CHECK", actor=_ACTOR, at=_AT)
        stale.orders.save(old)

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
        order_id = app.handle(
            PlaceOrder(
                channel=Channel("web"),
                customer=CustomerRef(CustomerId("C-1")),
                currency="EUR",
                shipping_address=_ADDRESS,
                lines=[NewLine(Sku("SKU-1"), 1, Money.of("9.99", "EUR"))],
            )
        ).order_id

        def hold(n: int, k: int) -> None:
            app.handle(HoldOrder(order_id=order_id, code=f"T{n}-{k}"))

        _together(threads, holds, hold)
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
    def _stock(self, store: Store, *positions: StockPosition) -> None:
        with store.unit_of_work() as uow:
            for position in positions:
                uow.inventory.save(position)
            uow.commit()

    def test_a_stock_position_reads_back_equal_with_reservations_and_supply(self, store: Store) -> None:
        position = StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=10, safety_stock=1)
        position.reserve("O-1/1", 3, reference="O-1", at=_AT)
        position.reserve(
            "CART-1", 2, reference="CART-1", at=_AT, hard=False, expires_at=_AT + timedelta(minutes=15)
        )
        position.expect(Supply("PO-1", 20, date(2026, 3, 10)), at=_AT)
        position.expect(Supply("TR-1", 5, date(2026, 3, 4), SupplyKind.TRANSFER), at=_AT)
        self._stock(store, position)
        assert position.persisted_version == position.version == 6
        assert position.new_entries() == []
        with store.unit_of_work() as uow:
            loaded = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert loaded is not None and loaded is not position
            assert uow.inventory.get("WH-1", Sku("SKU-1")) is loaded  # one object per position in a unit
            assert uow.inventory.get("WH-2", Sku("SKU-1")) is None
            assert uow.inventory.get("WH-1", Sku("SKU-2")) is None
        assert loaded == position
        assert loaded.reservations == position.reservations and loaded.supply == position.supply
        assert {k: r.sequence for k, r in loaded.reservations.items()} == {"O-1/1": 3, "CART-1": 4}
        assert {k: s.sequence for k, s in loaded.supply.items()} == {"PO-1": 5, "TR-1": 6}
        assert loaded.persisted_version == loaded.version == 6
        assert loaded.new_entries() == []
        assert loaded.available(_AT) == 4
        assert loaded.incoming() == ((date(2026, 3, 4), 5), (date(2026, 3, 10), 20))

    def test_each_unit_reads_its_own_copy_of_the_latest_committed_state(self, store: Store) -> None:
        # a store may keep decoded copies of what it read or wrote (by version): a unit must still get an
        # object of its own, unchanged by what another unit did without committing, and the latest commit
        sku = Sku("SKU-1")
        self._stock(store, StockPosition.open("WH-1", sku, at=_AT, on_hand=10))
        self._add(store, _order())
        for _ in range(2):  # the second round reads what the first one's reads may have kept
            with store.unit_of_work() as uow:
                position = uow.inventory.get("WH-1", sku)
                (listed,) = uow.inventory.for_skus([sku])
                order = uow.orders.get(OrderId("O-1"))
                assert position is not None and listed is position
                position.reserve("K-1", 3, reference="O-1", at=_AT)  # never committed
                order.hold("credit", actor=_ACTOR, at=_AT, message="check")
        with store.unit_of_work() as uow:
            (position,) = uow.inventory.for_skus([sku])
            order = uow.orders.get(OrderId("O-1"))
            assert position.version == 1 and position.reservations == {} and position.new_entries() == []
            assert order.version == 2 and order.holds == () and order.new_events() == []
            position.reserve("K-1", 3, reference="O-1", at=_AT)
            order.hold("credit", actor=_ACTOR, at=_AT, message="check")
            uow.inventory.save(position)
            uow.orders.save(order)
            uow.commit()
        with store.unit_of_work() as first, store.unit_of_work() as second:
            mine, theirs = first.inventory.get("WH-1", sku), second.inventory.get("WH-1", sku)
            assert mine is not None and theirs is not None and mine is not theirs
            assert mine.version == theirs.version == 2 and set(mine.reservations) == {"K-1"}
            assert first.orders.get(OrderId("O-1")) is not second.orders.get(OrderId("O-1"))
            assert first.orders.get(OrderId("O-1")).version == 3
            assert [h.code for h in first.orders.get(OrderId("O-1")).holds] == ["credit"]
            mine.release("K-1", at=_AT, reason="test")
            first.inventory.save(mine)
            first.commit()
            theirs.receive(5, at=_AT)
            second.inventory.save(theirs)
            with pytest.raises(ConcurrencyConflict):  # read at version 2, stored at 3 meanwhile
                second.commit()
        with store.unit_of_work() as uow:
            position = uow.inventory.get("WH-1", sku)
            assert position is not None and position.version == 3 and position.on_hand == 10
            assert position.reservations == {}

    def test_the_ledger_is_appended_at_each_commit_and_replays_to_the_stored_position(
        self, store: Store
    ) -> None:
        position = StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=5, reason="opening count")
        self._stock(store, position)
        with store.unit_of_work() as uow:
            loaded = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert loaded is not None
            loaded.reserve("K-1", 4, reference="O-1", at=_AT)
            loaded.release("K-1", 1, at=_AT, reason="line cut")
            loaded.consume("K-1", 2, at=_AT, reason="shipped")
            loaded.expect(Supply("PO-1", 10, date(2026, 3, 9)), at=_AT)
            loaded.receive(4, at=_AT, supply_ref="PO-1")
            loaded.adjust(6, at=_AT, reason="count")
            uow.inventory.save(loaded)
            uow.commit()
        with store.unit_of_work() as uow:
            ledger = uow.inventory.ledger("WH-1", Sku("SKU-1"))
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert uow.inventory.ledger("WH-2", Sku("SKU-1")) == []
        assert [e.sequence for e in ledger] == list(range(1, 8))
        assert [e.kind for e in ledger] == [
            EntryKind.OPENED,
            EntryKind.RESERVED,
            EntryKind.RELEASED,
            EntryKind.CONSUMED,
            EntryKind.SUPPLY_EXPECTED,
            EntryKind.RECEIVED,
            EntryKind.ADJUSTED,
        ]
        assert ledger[0].reason == "opening count" and ledger[2].compensates == 2
        assert ledger[6].quantity == -1  # a count records the difference
        assert stored is not None and stored.version == 7
        assert StockPosition.replay(ledger) == stored
        assert (stored.on_hand, stored.reserved(_AT), stored.supply["PO-1"].quantity) == (6, 1, 6)

    def test_concurrent_changes_to_a_position_conflict_and_the_first_wins(self, store: Store) -> None:
        self._stock(store, StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=10))
        with store.unit_of_work() as a, store.unit_of_work() as b:
            pa = a.inventory.get("WH-1", Sku("SKU-1"))
            pb = b.inventory.get("WH-1", Sku("SKU-1"))
            assert pa is not None and pb is not None and pa == pb
            pa.reserve("K-A", 3, reference="O-A", at=_AT)
            pb.reserve("K-B", 4, reference="O-B", at=_AT)
            a.inventory.save(pa)
            b.inventory.save(pb)
            a.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                b.commit()
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert pb.new_entries() != []  # the loser keeps its change, to retry on a fresh read
        with store.unit_of_work() as uow:
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            ledger = uow.inventory.ledger("WH-1", Sku("SKU-1"))
        assert stored is not None and stored.version == 2 and set(stored.reservations) == {"K-A"}
        assert [e.key for e in ledger] == ["", "K-A"]

    def test_a_position_opened_twice_conflicts(self, store: Store) -> None:
        with store.unit_of_work() as a, store.unit_of_work() as b:
            a.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=1))
            b.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=2))
            a.commit()
            with pytest.raises(ConcurrencyConflict):
                b.commit()
        with store.unit_of_work() as uow:
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert stored is not None and stored.on_hand == 1
            assert len(uow.inventory.ledger("WH-1", Sku("SKU-1"))) == 1

    def test_for_skus_reads_every_position_sorted_by_sku_then_node(self, store: Store) -> None:
        self._stock(
            store,
            *(
                StockPosition.open(node, Sku(sku), at=_AT, on_hand=n)
                for n, (node, sku) in enumerate(
                    [("WH-2", "B"), ("WH-1", "B"), ("WH-3", "A"), ("WH-1", "A"), ("WH-1", "C"), ("B-9", "A")]
                )
            ),
        )
        with store.unit_of_work() as uow:
            extra = StockPosition.open("WH-0", Sku("B"), at=_AT, on_hand=9)  # staged, not yet committed
            uow.inventory.save(extra)
            found = uow.inventory.for_skus([Sku("B"), Sku("A"), Sku("B"), Sku("Z")])
            assert [(p.sku.value, p.node_id) for p in found] == [
                ("A", "B-9"),
                ("A", "WH-1"),
                ("A", "WH-3"),
                ("B", "WH-0"),
                ("B", "WH-1"),
                ("B", "WH-2"),
            ]
            assert found[3] is extra
            assert uow.inventory.get("WH-1", Sku("A")) is found[1]
            assert [p.node_id for p in uow.inventory.for_sku(Sku("A"))] == ["B-9", "WH-1", "WH-3"]
            assert uow.inventory.for_skus([]) == []
            assert uow.inventory.for_sku(Sku("Z")) == []

    def test_for_node_reads_every_position_of_the_node_sorted_by_sku(self, store: Store) -> None:
        held = StockPosition.open("WH-1", Sku("B"), at=_AT, on_hand=5)
        held.reserve("O-7/1/WH-1/3", 2, reference="O-7", at=_AT)
        self._stock(
            store,
            held,
            StockPosition.open("WH-1", Sku("A"), at=_AT, on_hand=1),
            StockPosition.open("WH-2", Sku("A"), at=_AT, on_hand=1),
            StockPosition.open("WH-10", Sku("A"), at=_AT, on_hand=1),  # a node id WH-1 is a prefix of
        )
        with store.unit_of_work() as uow:
            extra = StockPosition.open("WH-1", Sku("0"), at=_AT, on_hand=9)  # staged, not yet committed
            uow.inventory.save(extra)
            found = uow.inventory.for_node("WH-1")
            assert [p.sku.value for p in found] == ["0", "A", "B"]
            assert found[0] is extra and uow.inventory.get("WH-1", Sku("B")) is found[2]
            assert [r.reference for r in found[2].reservations.values()] == ["O-7"]
            assert uow.inventory.for_node("WH-9") == []
            with pytest.raises(InvalidValue):
                uow.inventory.for_node(" WH-1")

    def test_a_stock_change_without_commit_or_with_a_failed_commit_stores_nothing(self, store: Store) -> None:
        self._stock(store, StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=10))
        with store.unit_of_work() as uow:  # never committed
            uow.inventory.save(StockPosition.open("WH-2", Sku("SKU-1"), at=_AT, on_hand=1))
            position = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None
            position.reserve("K-1", 1, reference="O-1", at=_AT)
            uow.inventory.save(position)
        with pytest.raises(RuntimeError), store.unit_of_work() as uow:  # an error inside the unit
            position = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None
            position.receive(5, at=_AT)
            uow.inventory.save(position)
            raise RuntimeError("boom")
        with store.unit_of_work() as stale:  # a commit that fails on one position writes none
            old = stale.inventory.get("WH-1", Sku("SKU-1"))
            assert old is not None
            with store.unit_of_work() as other:
                fresh = other.inventory.get("WH-1", Sku("SKU-1"))
                assert fresh is not None
                fresh.set_safety_stock(2, at=_AT)
                other.inventory.save(fresh)
                other.commit()
            new = StockPosition.open("WH-0", Sku("SKU-1"), at=_AT, on_hand=3)
            old.receive(1, at=_AT)
            stale.inventory.save(new)
            stale.inventory.save(old)
            stale.orders.add(_order("O-1"))
            with pytest.raises(ConcurrencyConflict):
                stale.commit()
        with store.unit_of_work() as uow:
            assert [p.node_id for p in uow.inventory.for_sku(Sku("SKU-1"))] == ["WH-1"]
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert stored is not None and (stored.on_hand, stored.safety_stock, stored.version) == (10, 2, 2)
            assert stored.reservations == {}
            assert [e.kind for e in uow.inventory.ledger("WH-1", Sku("SKU-1"))] == [
                EntryKind.OPENED,
                EntryKind.SAFETY_STOCK_SET,
            ]
            assert uow.inventory.ledger("WH-0", Sku("SKU-1")) == []
            assert uow.orders.find(OrderId("O-1")) is None

    def test_concurrent_reservations_from_threads_lose_no_update(self, store: Store) -> None:
        threads, each = 4, 5
        self._stock(store, StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=100))

        def reserve(n: int, k: int) -> None:
            with store.unit_of_work() as uow:
                position = uow.inventory.get("WH-1", Sku("SKU-1"))
                assert position is not None
                position.reserve(f"T{n}-{k}", 2, reference=f"O-{n}", at=_AT)
                uow.inventory.save(position)
                uow.commit()

        _together(threads, each, reserve)
        with store.unit_of_work() as uow:
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            ledger = uow.inventory.ledger("WH-1", Sku("SKU-1"))
        assert stored is not None and len(stored.reservations) == threads * each
        assert stored.available(_AT) == 100 - 2 * threads * each
        assert [e.sequence for e in ledger] == list(range(1, threads * each + 2))
        assert StockPosition.replay(ledger) == stored

    # -- capacity -----------------------------------------------------------------------------------------
    def _capacity(self, store: Store, node_id: str, day: date, *keys: str, limit: int | None = None) -> None:
        with store.unit_of_work() as uow:
            node_day = uow.capacity.get(node_id, day)
            for key in keys:
                node_day.take(key, limit=limit)
            uow.commit()

    def _stored_day(self, store: Store, node_id: str, day: date = _DAY) -> NodeDay:
        with store.unit_of_work() as uow:
            return uow.capacity.get(node_id, day)

    def test_a_node_day_never_stored_reads_as_an_empty_one(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            node_day = uow.capacity.get("WH-1", _DAY)
            assert node_day == NodeDay.open("WH-1", _DAY)
            assert (node_day.taken, node_day.used, node_day.version, node_day.persisted_version) == (
                {},
                0,
                0,
                0,
            )
            assert not node_day.changed
            assert uow.capacity.get("WH-1", _DAY) is node_day  # one object per node day in a unit
            uow.commit()  # reading changes nothing: nothing is written
        with store.unit_of_work() as uow:
            assert uow.capacity.for_day(_DAY, ["WH-1"]) == [NodeDay.open("WH-1", _DAY)]

    def test_a_node_day_reads_back_equal_and_its_version_only_grows(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            node_day = NodeDay.open("WH-1", _DAY)
            assert node_day.take("O-1/1", limit=5)
            assert node_day.take("O-2/1", limit=5, shipments=2)
            assert not node_day.take("O-1/1", limit=5)  # a retry counts once
            uow.capacity.save(node_day)
            uow.commit()
        assert node_day.persisted_version == node_day.version == 2 and not node_day.changed
        loaded = self._stored_day(store, "WH-1")
        assert loaded == node_day and loaded is not node_day
        assert loaded.taken == {"O-1/1": 1, "O-2/1": 2} and loaded.used == 3 and loaded.left(5) == 2
        assert loaded.persisted_version == loaded.version == 2 and not loaded.changed
        with store.unit_of_work() as uow:  # a loaded day changes without save: it is the unit's object
            again = uow.capacity.get("WH-1", _DAY)
            assert again.give_back("O-1/1") and again.give_back("O-2/1")
            uow.commit()
        emptied = self._stored_day(store, "WH-1")
        assert emptied.taken == {} and emptied.version == emptied.persisted_version == 4
        self._capacity(store, "WH-1", _DAY, "O-3/1", limit=1)
        assert self._stored_day(store, "WH-1").version == 5
        assert self._stored_day(store, "WH-1", _DAY + timedelta(days=1)) == NodeDay.open(
            "WH-1", _DAY + timedelta(days=1)
        )

    def test_for_day_reads_the_nodes_of_one_day_sorted_with_fresh_ones_for_the_rest(
        self, store: Store
    ) -> None:
        later = _DAY + timedelta(days=1)
        self._capacity(store, "WH-2", _DAY, "A", "B")
        self._capacity(store, "B-9", _DAY, "C")
        self._capacity(store, "WH-1", later, "D")  # another day: not read
        with store.unit_of_work() as uow:
            staged = NodeDay.open("WH-0", _DAY)  # staged, not yet committed
            staged.take("E", limit=None)
            uow.capacity.save(staged)
            found = uow.capacity.for_day(_DAY, ["WH-2", "WH-1", "B-9", "WH-0", "WH-2"])
            assert [(d.node_id, d.day, d.used, d.version) for d in found] == [
                ("B-9", _DAY, 1, 1),
                ("WH-0", _DAY, 1, 1),
                ("WH-1", _DAY, 0, 0),
                ("WH-2", _DAY, 2, 2),
            ]
            assert found[1] is staged
            assert uow.capacity.get("WH-2", _DAY) is found[3]
            assert uow.capacity.get("WH-1", _DAY) is found[2]  # the fresh one is kept too
            assert uow.capacity.for_day(_DAY, ["WH-1", "WH-2"]) == [found[2], found[3]]
            assert uow.capacity.for_day(_DAY, []) == []
            assert [d.used for d in uow.capacity.for_day(later, iter(["WH-1"]))] == [1]

    def test_concurrent_takes_on_a_node_day_conflict_and_the_first_wins(self, store: Store) -> None:
        with store.unit_of_work() as a, store.unit_of_work() as b:  # a day not stored yet
            da, db = a.capacity.get("WH-1", _DAY), b.capacity.get("WH-1", _DAY)
            da.take("K-A", limit=2)
            db.take("K-B", limit=2)
            a.commit()
            b.orders.add(_order("O-1"))
            b.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=1))
            with pytest.raises(ConcurrencyConflict) as info:
                b.commit()
        assert (info.value.expected_version, info.value.actual_version) == (0, 1)
        assert db.changed  # the loser keeps its change, to retry on a fresh read
        with store.unit_of_work() as a, store.unit_of_work() as b:  # a stored day
            da, db = a.capacity.get("WH-1", _DAY), b.capacity.get("WH-1", _DAY)
            da.take("K-C", limit=2)
            db.take("K-D", limit=2)
            a.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                b.commit()
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        stored = self._stored_day(store, "WH-1")
        assert stored.taken == {"K-A": 1, "K-C": 1} and stored.version == 2
        with store.unit_of_work() as uow:  # the failed commits stored none of their changes
            assert uow.orders.find(OrderId("O-1")) is None
            assert uow.inventory.get("WH-1", Sku("SKU-1")) is None

    def test_a_capacity_change_without_commit_or_with_a_failed_commit_stores_nothing(
        self, store: Store
    ) -> None:
        self._capacity(store, "WH-1", _DAY, "K-1")
        with store.unit_of_work() as uow:  # never committed
            uow.capacity.get("WH-1", _DAY).take("K-2", limit=None)
            uow.capacity.get("WH-2", _DAY).take("K-3", limit=None)
        with pytest.raises(RuntimeError), store.unit_of_work() as uow:  # an error inside the unit
            uow.capacity.get("WH-1", _DAY).give_back("K-1")
            raise RuntimeError("boom")
        with store.unit_of_work() as uow:  # rolled back explicitly
            uow.capacity.get("WH-1", _DAY).take("K-4", limit=None)
            uow.rollback()
            uow.commit()
        with store.unit_of_work() as stale:  # a commit that fails on one day writes none
            old = stale.capacity.get("WH-1", _DAY)
            self._capacity(store, "WH-1", _DAY, "K-5")
            stale.capacity.get("WH-0", _DAY).take("K-6", limit=None)
            old.take("K-7", limit=None)
            with pytest.raises(ConcurrencyConflict):
                stale.commit()
        with store.unit_of_work() as uow:
            assert [
                (d.node_id, d.taken, d.version) for d in uow.capacity.for_day(_DAY, ["WH-0", "WH-1", "WH-2"])
            ] == [
                ("WH-0", {}, 0),
                ("WH-1", {"K-1": 1, "K-5": 1}, 2),
                ("WH-2", {}, 0),
            ]

    def test_threads_taking_capacity_at_once_never_exceed_the_limit(self, store: Store) -> None:
        threads, each, limit = 4, 4, 10
        taken: list[str] = []
        refused: list[str] = []

        def take(n: int, k: int) -> None:
            try:
                with store.unit_of_work() as uow:
                    node_day = uow.capacity.get("WH-1", _DAY)
                    node_day.take(f"T{n}-{k}", limit=limit)
                    uow.commit()
                taken.append(f"T{n}-{k}")
            except CapacityExhausted as e:
                assert (e.node_id, e.day, e.limit, e.used) == ("WH-1", _DAY, limit, limit)
                refused.append(f"T{n}-{k}")

        _together(threads, each, take)
        stored = self._stored_day(store, "WH-1")
        assert stored.used == limit and sorted(stored.taken) == sorted(taken)
        assert len(taken) == limit and len(refused) == threads * each - limit
        assert stored.version == limit

    # -- node states ------------------------------------------------------------------------------------------
    def test_node_states_start_empty_and_a_switch_reads_back_with_who_when_and_why(
        self, store: Store
    ) -> None:
        with store.unit_of_work() as uow:
            assert uow.nodes.current() == NodeStates(0, ())
            uow.commit()  # reading changes nothing: nothing is written
        later = (_AT + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
        with store.unit_of_work() as uow:
            assert uow.nodes.set_online("WH-2", False, actor=_ACTOR, at=_AT, reason="storm")
            assert uow.nodes.set_online("WH-1", False, actor=Actor.user("alice"), at=later)
            assert uow.nodes.current().offline == {"WH-1", "WH-2"}  # staged, seen in the unit
            uow.commit()
        with store.unit_of_work() as uow:
            states = uow.nodes.current()
        assert states == NodeStates(
            1,
            (
                NodeStatus("WH-1", False, later, Actor.user("alice"), ""),
                NodeStatus("WH-2", False, _AT, _ACTOR, "storm"),
            ),
        )
        assert states.offline == {"WH-1", "WH-2"} and states.is_online("WH-3")
        with store.unit_of_work() as uow:
            assert not uow.nodes.set_online("WH-2", False, actor=_ACTOR, at=_AT)  # already offline
            assert uow.nodes.set_online("WH-2", True, actor=_ACTOR, at=later, reason="back")
            uow.commit()
        with store.unit_of_work() as uow:
            states = uow.nodes.current()
            assert uow.nodes.current() is states  # read once per unit
        assert states.version == 2 and states.offline == {"WH-1"}
        assert states.status("WH-2") == NodeStatus("WH-2", True, later, _ACTOR, "back")

    def test_node_states_without_commit_or_with_a_failed_commit_are_not_stored(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.nodes.set_online("WH-1", False, actor=_ACTOR, at=_AT)
        self._add(store, _order("O-1"))
        with store.unit_of_work() as stale:
            stale.nodes.set_online("WH-1", False, actor=_ACTOR, at=_AT)
            self._stale_change(store, stale)  # the commit fails as a whole
            with pytest.raises(ConcurrencyConflict):
                stale.commit()
        with store.unit_of_work() as uow:
            assert uow.nodes.current() == NodeStates(0, ())

    def test_a_unit_that_read_the_node_states_conflicts_when_they_change_before_it_commits(
        self, store: Store
    ) -> None:
        self._stock(store, StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=5))
        with store.unit_of_work() as sourcing, store.unit_of_work() as operator:
            assert sourcing.nodes.current().offline == frozenset()  # it plans with WH-1 online...
            position = sourcing.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None
            position.reserve("R-1", 2, reference="O-1", at=_AT)
            sourcing.inventory.save(position)
            operator.nodes.set_online("WH-1", False, actor=_ACTOR, at=_AT)  # ...which goes offline first
            operator.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                sourcing.commit()
        assert (info.value.expected_version, info.value.actual_version) == (0, 1)
        with store.unit_of_work() as uow:
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert stored is not None and stored.reservation("R-1") is None  # nothing of it was written
            assert uow.nodes.current().offline == {"WH-1"}
        with store.unit_of_work() as blind:  # a unit that never read them is not held up by them
            position = blind.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None
            with store.unit_of_work() as operator:
                operator.nodes.set_online("WH-1", True, actor=_ACTOR, at=_AT)
                operator.commit()
            position.reserve("R-2", 1, reference="O-2", at=_AT)
            blind.inventory.save(position)
            blind.commit()

    def test_concurrent_switches_conflict_and_the_first_wins(self, store: Store) -> None:
        with store.unit_of_work() as first, store.unit_of_work() as second:
            first.nodes.set_online("WH-1", False, actor=_ACTOR, at=_AT)
            second.nodes.set_online("WH-2", False, actor=_ACTOR, at=_AT)
            second.commit()
            with pytest.raises(ConcurrencyConflict):
                first.commit()
        with store.unit_of_work() as uow:
            assert uow.nodes.current().offline == {"WH-2"} and uow.nodes.current().version == 1

    def test_a_node_switched_offline_by_one_application_is_left_out_by_another(self, store: Store) -> None:
        nodes = [
            FulfilmentNode("WH-NEAR", NodeKind.WAREHOUSE, GeoPoint(52.5, 13.4), _SHIPPING),
            FulfilmentNode("WH-FAR", NodeKind.WAREHOUSE, GeoPoint(48.1, 11.6), _SHIPPING),
        ]
        clock = ManualClock(_AT, tick=timedelta(seconds=1))
        operator = bootstrap(store, clock=clock, network=nodes, ids=SequentialIds(order_prefix="A"))
        worker = bootstrap(store, clock=clock, network=nodes, ids=SequentialIds(order_prefix="B"))
        for node in nodes:
            worker.handle(ReceiveStock(node_id=node.node_id, sku=Sku("SKU-1"), quantity=10))
        first = worker.handle(_placement()).order_id
        worker.handle(AcceptOrder(order_id=first))
        worker.handle(SourceOrder(order_id=first))
        assert {a.node_id for a in worker.get_order(first).allocations} == {"WH-NEAR"}
        resourced = operator.set_node_online("WH-NEAR", False, reason="flood")
        assert [r.order_id for r in resourced] == [first]  # its units moved
        assert {a.node_id for a in worker.get_order(first).allocations} == {"WH-FAR"}
        second = worker.handle(_placement()).order_id
        worker.handle(AcceptOrder(order_id=second))
        worker.handle(SourceOrder(order_id=second))  # the worker's own network still lists it online
        assert {a.node_id for a in worker.get_order(second).allocations} == {"WH-FAR"}
        assert worker.available("SKU-1") == {"WH-FAR": 2, "WH-NEAR": 10}
        status = worker.node_states().status("WH-NEAR")
        assert status is not None and (status.online, status.reason) == (False, "flood")
        operator.set_node_online("WH-NEAR", True)
        third = worker.handle(_placement()).order_id
        worker.handle(AcceptOrder(order_id=third))
        worker.handle(SourceOrder(order_id=third))
        assert {a.node_id for a in worker.get_order(third).allocations} == {"WH-NEAR"}

    # -- housekeeping ---------------------------------------------------------------------------------------
    def test_housekeeping_deletes_only_old_keys_and_past_capacity_days(self, store: Store) -> None:
        with store.unit_of_work() as probe:
            if not isinstance(probe, Housekeeping):
                pytest.skip(f"{type(store).__name__} offers no housekeeping")
        berlin = timezone(timedelta(hours=1))
        with store.unit_of_work() as uow:
            for n, created in enumerate(
                [
                    _AT - timedelta(days=40),
                    (_AT - timedelta(days=31)).astimezone(berlin),  # an offset must not change the order
                    _AT - timedelta(days=2),
                ]
            ):
                uow.orders.add(_order(f"O-{n}"))
                uow.idempotency.add(IdempotencyRecord(f"K-{n}", OrderId(f"O-{n}"), "f", created))
            uow.commit()
        for day in (_DAY - timedelta(days=2), _DAY - timedelta(days=1), _DAY, _DAY + timedelta(days=1)):
            self._capacity(store, "WH-1", day, "A")
        with store.unit_of_work() as uow:
            assert isinstance(uow, Housekeeping)
            assert uow.purge(keys_before=_AT - timedelta(days=30), days_before=_DAY) == (2, 2)
        with store.unit_of_work() as uow:
            assert [uow.idempotency.get(f"K-{n}") is None for n in range(3)] == [True, True, False]
            assert [d.used for d in uow.capacity.for_day(_DAY - timedelta(days=1), ["WH-1"])] == [0]
            assert [d.used for d in uow.capacity.for_day(_DAY, ["WH-1"])] == [1]
            assert uow.orders.find(OrderId("O-0")) is not None  # the orders stay
        with store.unit_of_work() as uow:
            assert isinstance(uow, Housekeeping)
            assert uow.purge(keys_before=None, days_before=None) == (0, 0)

    def test_lapsed_positions_are_those_holding_a_soft_reservation_past_its_expiry(
        self, store: Store
    ) -> None:
        with store.unit_of_work() as probe:
            if not isinstance(probe, LapsedReservations):
                pytest.skip(f"{type(store).__name__} cannot find lapsed reservations")
        berlin = timezone(timedelta(hours=1))
        carts = {  # (node, SKU): the expiry of its one soft reservation, None for a hard one
            ("WH-1", "SKU-1"): _AT - timedelta(minutes=5),
            ("WH-1", "SKU-2"): _AT,  # lapses at its expiry
            ("WH-2", "SKU-1"): (_AT - timedelta(seconds=1)).astimezone(berlin),  # an offset changes nothing
            ("WH-2", "SKU-2"): _AT + timedelta(microseconds=1),  # still live
            ("WH-3", "SKU-1"): None,
        }
        with store.unit_of_work() as uow:
            for (node, sku), expires_at in carts.items():
                position = StockPosition.open(node, Sku(sku), at=_AT - timedelta(hours=1), on_hand=10)
                position.reserve(
                    "CART-1",
                    2,
                    reference="CART-1",
                    at=_AT - timedelta(hours=1),
                    hard=expires_at is None,
                    expires_at=expires_at,
                )
                uow.inventory.save(position)
            uow.commit()
        lapsed = [("WH-1", Sku("SKU-1")), ("WH-1", Sku("SKU-2")), ("WH-2", Sku("SKU-1"))]
        with store.unit_of_work() as uow:
            assert isinstance(uow, LapsedReservations)
            assert uow.lapsed_positions(_AT, 10) == lapsed  # by node, then SKU
            assert uow.lapsed_positions(_AT, 2) == lapsed[:2]
            assert uow.lapsed_positions(_AT - timedelta(hours=1), 10) == []
        with store.unit_of_work() as uow:  # once expired and committed, a position is no longer listed
            stored = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert stored is not None and stored.expire(_AT) == ["CART-1"]
            uow.inventory.save(stored)
            uow.commit()
        with store.unit_of_work() as uow:
            assert isinstance(uow, LapsedReservations)
            assert uow.lapsed_positions(_AT, 10) == lapsed[1:]
        with store.unit_of_work() as uow:  # a lapsed cart's key, taken again by an order, holds no expiry
            stored = uow.inventory.get("WH-1", Sku("SKU-2"))
            assert stored is not None
            stored.reserve("CART-1", 1, reference="O-1", at=_AT)
            uow.inventory.save(stored)
            uow.commit()
        with store.unit_of_work() as uow:
            assert isinstance(uow, LapsedReservations)
            assert uow.lapsed_positions(_AT, 10) == lapsed[2:]
            with pytest.raises(InvalidTimestamp):
                uow.lapsed_positions(_AT.replace(tzinfo=None), 10)

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

    # -- read models ----------------------------------------------------------------------------------------
    def _change(self, store: Store, order_id: str, *steps: str) -> None:
        """Load, change and commit one order; each step is ``name@minutes`` after _AT, e.g. ``accept@20``,
        ``hold:credit@60``, ``release:credit@90``, ``backorder:1=2@30``, ``allocate@40``."""
        with store.unit_of_work() as uow:
            order = uow.orders.get(OrderId(order_id))
            for step in steps:
                what, minutes = step.split("@")
                at = _AT + timedelta(minutes=int(minutes))
                name, _, arg = what.partition(":")
                if name == "accept":
                    order.accept(actor=_ACTOR, at=at)
                elif name == "hold":
                    order.hold(arg, actor=_ACTOR, at=at, message=f"why {arg}")
                elif name == "release":
                    order.release_hold(arg, actor=_ACTOR, at=at)
                elif name == "backorder":
                    units = {line: int(n) for line, n in (part.split("=") for part in arg.split(","))}
                    order.backorder(units, actor=_ACTOR, at=at)
                elif name == "allocate":
                    order.allocate(actor=_ACTOR, at=at)
                else:  # pragma: no cover - a mistake in the test
                    raise AssertionError(step)
            uow.orders.save(order)
            uow.commit()

    def _read_models(self, store: Store) -> tuple[list[OrderAge], list[HeldOrder], list[BackorderSummary]]:
        with store.unit_of_work() as uow:
            reports = _reports(uow)
            ages = [
                a
                for s in sorted(DEFAULT_LIFECYCLE.states, key=lambda s: s.name)
                for a in reports.orders_by_status(s, limit=1000)
            ]
            return ages, reports.held_orders(limit=1000), reports.backorders_by_sku()

    def test_orders_by_status_lists_the_longest_in_it_first_since_they_entered_it(self, store: Store) -> None:
        self._add(store, _placed_at("O-1", _AT + timedelta(minutes=10)))
        self._add(store, _placed_at("O-2", _AT))
        self._add(store, _placed_at("O-3", _AT + timedelta(minutes=5)))
        self._add(store, _placed_at("O-4", _AT))
        self._change(store, "O-3", "accept@20")
        # a second hold changes the order but not its status: it is on hold since the first
        self._change(store, "O-4", "hold:credit@60")
        self._change(store, "O-4", "hold:fraud@120")
        with store.unit_of_work() as uow:
            reports = _reports(uow)
            assert reports.orders_by_status(OrderStatus.PLACED) == [
                OrderAge(OrderId("O-2"), OrderStatus.PLACED, _AT),
                OrderAge(OrderId("O-1"), OrderStatus.PLACED, _AT + timedelta(minutes=10)),
            ]
            older = reports.orders_by_status(OrderStatus.PLACED, older_than=_AT + timedelta(minutes=10))
            assert older == [OrderAge(OrderId("O-2"), OrderStatus.PLACED, _AT)]
            assert reports.orders_by_status(OrderStatus.PLACED, limit=1) == older
            assert reports.orders_by_status(OrderStatus.PLACED, limit=0) == []
            assert reports.orders_by_status(OrderStatus.ACCEPTED) == [
                OrderAge(OrderId("O-3"), OrderStatus.ACCEPTED, _AT + timedelta(minutes=20))
            ]
            assert reports.orders_by_status(OrderStatus.ON_HOLD) == [
                OrderAge(OrderId("O-4"), OrderStatus.ON_HOLD, _AT + timedelta(minutes=60))
            ]
            assert reports.orders_by_status(OrderStatus.CANCELLED) == []

    def test_held_orders_lists_active_holds_oldest_first_and_by_code(self, store: Store) -> None:
        self._add(store, _placed_at("O-1", _AT))
        self._add(store, _placed_at("O-2", _AT))
        self._add(store, _placed_at("O-3", _AT))
        self._change(store, "O-1", "hold:credit@60", "hold:fraud@120")
        self._change(store, "O-2", "hold:fraud@30")
        self._change(store, "O-3", "hold:fraud@30")
        credit = HeldOrder(OrderId("O-1"), "credit", "why credit", _AT + timedelta(minutes=60))
        fraud_1 = HeldOrder(OrderId("O-1"), "fraud", "why fraud", _AT + timedelta(minutes=120))
        fraud_2 = HeldOrder(OrderId("O-2"), "fraud", "why fraud", _AT + timedelta(minutes=30))
        fraud_3 = HeldOrder(OrderId("O-3"), "fraud", "why fraud", _AT + timedelta(minutes=30))
        with store.unit_of_work() as uow:
            reports = _reports(uow)
            assert reports.held_orders() == [fraud_2, fraud_3, credit, fraud_1]
            assert reports.held_orders("fraud") == [fraud_2, fraud_3, fraud_1]
            assert reports.held_orders("fraud", limit=1) == [fraud_2]
            assert reports.held_orders("unknown") == []
        self._change(store, "O-1", "release:credit@150")
        self._change(store, "O-2", "release:fraud@150")
        with store.unit_of_work() as uow:
            assert _reports(uow).held_orders() == [fraud_3, fraud_1]
            assert _reports(uow).orders_by_status(OrderStatus.PLACED) == [
                OrderAge(OrderId("O-2"), OrderStatus.PLACED, _AT + timedelta(minutes=150))
            ]

    def test_backorders_by_sku_sum_units_and_orders_with_the_oldest_first(self, store: Store) -> None:
        late, early = _AT + timedelta(minutes=10), _AT
        self._add(store, _placed_at("O-1", late))
        self._add(store, _placed_at("O-2", early))
        self._add(store, _placed_at("O-3", early))
        self._change(store, "O-1", "accept@20", "backorder:1=2@21")
        self._change(store, "O-2", "accept@20", "backorder:1=1,2=1@21")
        self._change(store, "O-3", "accept@20")  # nothing backordered
        sku_1 = BackorderSummary(
            Sku("SKU-1"),
            3,
            2,
            early,
            (
                BackorderedLine(OrderId("O-2"), LineId("1"), 1, early),
                BackorderedLine(OrderId("O-1"), LineId("1"), 2, late),
            ),
        )
        sku_2 = BackorderSummary(
            Sku("SKU-2"), 1, 1, early, (BackorderedLine(OrderId("O-2"), LineId("2"), 1, early),)
        )
        with store.unit_of_work() as uow:
            reports = _reports(uow)
            assert reports.backorders_by_sku() == [sku_1, sku_2]
            assert reports.backorders_by_sku(Sku("SKU-2")) == [sku_2]
            assert reports.backorders_by_sku(Sku("SKU-9")) == []
        self._change(store, "O-2", "allocate@30")  # its backorders are allocated now
        with store.unit_of_work() as uow:
            assert _reports(uow).backorders_by_sku() == [
                BackorderSummary(
                    Sku("SKU-1"), 2, 1, late, (BackorderedLine(OrderId("O-1"), LineId("1"), 2, late),)
                )
            ]

    def test_read_models_are_unchanged_by_a_rollback_or_a_failed_commit(self, store: Store) -> None:
        self._add(store, _placed_at("O-1", _AT))
        self._change(store, "O-1", "accept@10", "backorder:1=1@11")
        before = self._read_models(store)
        with store.unit_of_work() as uow:  # never committed
            order = uow.orders.get(OrderId("O-1"))
            order.hold("credit", actor=_ACTOR, at=_AT + timedelta(minutes=20))
            uow.orders.save(order)
            assert _reports(uow).held_orders() == []  # staged changes are not seen
        assert self._read_models(store) == before
        with store.unit_of_work() as first, store.unit_of_work() as second:
            a, b = first.orders.get(OrderId("O-1")), second.orders.get(OrderId("O-1"))
            a.allocate(actor=_ACTOR, at=_AT + timedelta(minutes=30))
            b.hold("credit", actor=_ACTOR, at=_AT + timedelta(minutes=30))
            first.orders.save(a)
            second.orders.save(b)
            second.orders.add(_placed_at("O-2", _AT))
            first.commit()
            after = self._read_models(store)
            with pytest.raises(ConcurrencyConflict):
                second.commit()  # stores nothing: neither the hold nor the new order
        assert self._read_models(store) == after != before
        assert after[1] == [] and after[2] == []

    def test_read_models_follow_an_order_saved_without_being_read_in_its_unit(self, store: Store) -> None:
        # a store may skip rewriting rows that did not change since the order was read in the unit; an
        # order read elsewhere (another unit, another object) must have them rewritten
        self._add(store, _placed_at("O-1", _AT))
        self._change(store, "O-1", "accept@10", "backorder:1=1@11", "hold:credit@12")
        with store.unit_of_work() as uow:
            elsewhere = uow.orders.get(OrderId("O-1"))
        elsewhere.release_hold("credit", actor=_ACTOR, at=_AT + timedelta(minutes=13))
        with store.unit_of_work() as uow:  # never read in this unit
            uow.orders.save(elsewhere)
            uow.commit()
        _, holds, backorders = self._read_models(store)
        assert holds == [] and [b.sku for b in backorders] == [Sku("SKU-1")]
        self._change(store, "O-1", "hold:fraud@14")
        with store.unit_of_work() as uow:
            other = uow.orders.get(OrderId("O-1"))
        other.release_hold("fraud", actor=_ACTOR, at=_AT + timedelta(minutes=15))
        other.allocate(actor=_ACTOR, at=_AT + timedelta(minutes=15))
        with store.unit_of_work() as uow:
            uow.orders.get(OrderId("O-1"))  # read here, at the same version, as another object
            uow.orders.save(other)
            uow.commit()
        assert self._read_models(store)[1:] == ([], [])

    def test_read_models_match_the_stored_orders_and_their_replay_after_every_save(
        self, store: Store
    ) -> None:
        for n in range(1, 6):
            self._add(store, _placed_at(f"O-{n}", _AT + timedelta(minutes=n)))
        self._change(store, "O-1", "accept@10", "backorder:1=2,2=1@11")
        self._change(store, "O-1", "hold:credit@12")
        self._change(store, "O-1", "release:credit@13")
        self._change(store, "O-2", "hold:fraud@14", "hold:credit@15")
        self._change(store, "O-2", "release:fraud@16")
        self._change(store, "O-3", "accept@17", "backorder:2=1@18")
        self._change(store, "O-3", "allocate@19")
        self._change(store, "O-4", "accept@20", "hold:credit@21")
        with store.unit_of_work() as uow:
            orders = [uow.orders.get(i) for i in uow.orders.list_ids(limit=1000)]
        for order in orders:  # re-saving a stored order without a change writes nothing new
            with store.unit_of_work() as uow:
                uow.orders.save(uow.orders.get(order.id))
                uow.commit()
        replayed = [Order.replay(o.history) for o in orders]
        for rebuilt in (orders, replayed):
            ages = sorted(
                (OrderAge(o.id, o.status, status_since(o)) for o in rebuilt),
                key=lambda a: (a.status.name, a.since, a.order_id.value),
            )
            holds = sorted(
                (h for o in rebuilt for h in hold_rows(o)),
                key=lambda h: (h.placed_at, h.order_id.value, h.code),
            )
            backorders = summarise_backorders(
                sorted(
                    (row for o in rebuilt for row in backorder_rows(o)),
                    key=lambda r: (r[0].value, r[1].placed_at, r[1].order_id.value, r[1].line_id.value),
                )
            )
            stored_ages, stored_holds, stored_backorders = self._read_models(store)
            assert sorted(stored_ages, key=lambda a: (a.status.name, a.since, a.order_id.value)) == ages
            assert (stored_holds, stored_backorders) == (holds, backorders)
        assert len(stored_ages) == 5 and len(stored_holds) == 2 and len(stored_backorders) == 2

    # -- recent orders (ordercore.ports.RecentOrders, for duplicate detection) -----------------------------
    def test_placed_since_lists_the_customers_live_orders_since_the_moment_newest_first(
        self, store: Store
    ) -> None:
        self._add(store, _placed_at("O-1", _AT))
        self._add(store, _placed_at("O-2", _AT + timedelta(minutes=10)))
        self._add(store, _placed_at("O-3", _AT + timedelta(minutes=5)))
        self._add(store, _placed_at("O-4", _AT + timedelta(minutes=7), customer="C-2"))
        draft = Order.create(  # a draft was never placed
            order_id=OrderId("O-5"),
            channel=Channel("web"),
            customer=CustomerRef(CustomerId("C-1")),
            currency="EUR",
            shipping_address=_ADDRESS,
            lines=[NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR"))],
            actor=_ACTOR,
            at=_AT,
        )
        self._add(store, draft)
        with store.unit_of_work() as uow:
            assert _recent(uow, "C-1", _AT) == [
                ("O-2", _AT + timedelta(minutes=10)),
                ("O-3", _AT + timedelta(minutes=5)),
                ("O-1", _AT),
            ]
            assert _recent(uow, "C-1", _AT + timedelta(minutes=5)) == [
                ("O-2", _AT + timedelta(minutes=10)),
                ("O-3", _AT + timedelta(minutes=5)),
            ]
            assert _recent(uow, "C-1", _AT + timedelta(minutes=11)) == []
            assert _recent(uow, "C-2", _AT - timedelta(days=1)) == [("O-4", _AT + timedelta(minutes=7))]
            assert _recent(uow, "C-9", _AT - timedelta(days=1)) == []
            recent = uow.orders
            assert isinstance(recent, RecentOrders)
            (digest,) = recent.placed_since(CustomerId("C-2"), _AT)
            stored = uow.orders.get(OrderId("O-4"))
            assert digest == OrderDigest(
                OrderId("O-4"),
                CustomerId("C-2"),
                _AT + timedelta(minutes=7),
                frozenset({("SKU-1", 2), ("SKU-2", 1)}),
                stored.totals().grand_total,
            )
            assert digest.total == Money.of("24.98", "EUR")
            with pytest.raises(InvalidValue):
                recent.placed_since(CustomerId("C-1"), _AT.replace(tzinfo=None))
            with pytest.raises(InvalidValue):
                recent.placed_since("C-1", _AT)  # type: ignore[arg-type]

    def test_a_rejected_or_cancelled_order_drops_out_and_cancelled_units_leave_its_items(
        self, store: Store
    ) -> None:
        for n in range(1, 5):
            self._add(store, _placed_at(f"O-{n}", _AT + timedelta(minutes=n)))
        later = _AT + timedelta(minutes=30)
        with store.unit_of_work() as uow:
            o1, o2, o3 = (uow.orders.get(OrderId(f"O-{n}")) for n in (1, 2, 3))
            o1.reject(actor=_ACTOR, at=later, reason="fraud")
            o2.cancel(actor=_ACTOR, at=later, reason="customer asked")
            o3.cancel_lines({LineId("1"): 1}, actor=_ACTOR, at=later, reason="one fewer")
            for order in (o1, o2, o3):
                uow.orders.save(order)
            uow.commit()
        self._change(store, "O-4", "accept@40", "allocate@41")  # still live, the same digest
        with store.unit_of_work() as uow:
            assert _recent(uow, "C-1", _AT) == [
                ("O-4", _AT + timedelta(minutes=4)),
                ("O-3", _AT + timedelta(minutes=3)),
            ]
            recent = uow.orders
            assert isinstance(recent, RecentOrders)
            o3_digest, o4_digest = recent.placed_since(CustomerId("C-1"), _AT)[::-1]
            assert o3_digest.items == frozenset({("SKU-1", 1), ("SKU-2", 1)})
            assert o3_digest.total == uow.orders.get(OrderId("O-3")).totals().grand_total
            assert o4_digest.items == frozenset({("SKU-1", 2), ("SKU-2", 1)})
        # an order cancelled from an object read in another unit drops out too
        with store.unit_of_work() as uow:
            elsewhere = uow.orders.get(OrderId("O-3"))
        elsewhere.cancel(actor=_ACTOR, at=later, reason="after all")
        with store.unit_of_work() as uow:
            uow.orders.save(elsewhere)
            uow.commit()
        with store.unit_of_work() as uow:
            assert _recent(uow, "C-1", _AT) == [("O-4", _AT + timedelta(minutes=4))]

    def test_recent_orders_are_unchanged_by_a_rollback_or_a_failed_commit(self, store: Store) -> None:
        self._add(store, _placed_at("O-1", _AT))
        with store.unit_of_work() as uow:  # never committed
            uow.orders.add(_placed_at("O-2", _AT + timedelta(minutes=1)))
            order = uow.orders.get(OrderId("O-1"))
            order.cancel(actor=_ACTOR, at=_AT + timedelta(minutes=2), reason="no")
            uow.orders.save(order)
            assert _recent(uow, "C-1", _AT) == [("O-1", _AT)]  # staged changes are not seen
        with store.unit_of_work() as first, store.unit_of_work() as second:
            a, b = first.orders.get(OrderId("O-1")), second.orders.get(OrderId("O-1"))
            a.hold("credit", actor=_ACTOR, at=_AT + timedelta(minutes=3))
            b.cancel(actor=_ACTOR, at=_AT + timedelta(minutes=3), reason="no")
            first.orders.save(a)
            second.orders.save(b)
            second.orders.add(_placed_at("O-3", _AT + timedelta(minutes=3)))
            first.commit()
            with pytest.raises(ConcurrencyConflict):
                second.commit()  # stores nothing: neither the cancellation nor the new order
        with store.unit_of_work() as uow:
            assert _recent(uow, "C-1", _AT) == [("O-1", _AT)]

    def test_the_application_answers_operators_from_the_read_models(self, store: Store) -> None:
        clock = ManualClock(_AT)
        app = bootstrap(store, clock=clock, ids=SequentialIds())
        placed = app.handle(
            PlaceOrder(
                channel=Channel("web"),
                customer=CustomerRef(CustomerId("C-1")),
                currency="EUR",
                shipping_address=_ADDRESS,
                lines=[NewLine(Sku("SKU-1"), 1, Money.of("9.99", "EUR"))],
            )
        )
        order_id = placed.order_id
        assert order_id is not None
        status = app.get_order(order_id).status
        since = status_since(app.get_order(order_id))
        assert app.orders_aging(status) == [OrderAge(order_id, status, since)]
        assert app.orders_aging(status, older_than=timedelta(hours=1)) == []
        clock.advance(timedelta(hours=2))
        assert app.orders_aging(status, older_than=timedelta(hours=1)) == [OrderAge(order_id, status, since)]
        app.handle(HoldOrder(order_id=order_id, code="credit", message="over limit"))
        assert app.held_orders("credit") == [HeldOrder(order_id, "credit", "over limit", clock.now())]
        assert app.orders_aging(OrderStatus.ON_HOLD) == [OrderAge(order_id, OrderStatus.ON_HOLD, clock.now())]
        assert app.backorders() == [] and app.backorders("SKU-1") == []
