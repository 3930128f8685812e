"""The contract of stock positions, node capacity, node states and housekeeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest

from ordercore.clock import ManualClock
from ordercore.errors import (
    CapacityExhausted,
    ConcurrencyConflict,
    InvalidTimestamp,
    InvalidValue,
)
from ordercore.ids import SequentialIds
from ordercore.inventory import (
    EntryKind,
    FulfilmentNode,
    NodeDay,
    NodeKind,
    NodeStates,
    NodeStatus,
    StockPosition,
    Supply,
    SupplyKind,
)
from ordercore.ports import (
    Housekeeping,
    IdempotencyRecord,
    LapsedReservations,
    Store,
    UnitOfWork,
)
from ordercore.service.bootstrap import bootstrap
from ordercore.service.commands import AcceptOrder, ReceiveStock, SourceOrder
from ordercore.testing.contracts._support import (
    _ACTOR,
    _AT,
    _DAY,
    _SHIPPING,
    ContractBase,
    _order,
    _placement,
    _together,
)
from ordercore.values import (
    Actor,
    GeoPoint,
    OrderId,
    Sku,
)


class StockContract(ContractBase):
    """Stock positions and their ledger, node capacity, node states, housekeeping."""

    # -- inventory ----------------------------------------------------------------------------------------
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

    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (lambda uow: uow.inventory.get(1, Sku("SKU-1")), "node_id"),
            (lambda uow: uow.inventory.get("WH-1", "SKU-1"), "sku"),
            (lambda uow: uow.inventory.ledger("", Sku("SKU-1")), "node_id"),
            (lambda uow: uow.inventory.for_skus(["SKU-1"]), "skus"),
            (lambda uow: uow.inventory.for_node(None), "node_id"),
        ],
    )
    def test_a_malformed_position_key_is_refused_naming_it(
        self, store: Store, call: Callable[[UnitOfWork], object], field: str
    ) -> None:
        self._stock(store, StockPosition.open("WH-1", Sku("SKU-1"), at=_AT, on_hand=5))
        with store.unit_of_work() as uow:
            with pytest.raises(InvalidValue) as info:
                call(uow)
            assert info.value.field == field
            position = uow.inventory.get("WH-1", Sku("SKU-1"))  # the unit still reads
            assert position is not None and position.on_hand == 5

    def test_lapsed_positions_take_an_integer_limit(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            if not isinstance(uow, LapsedReservations):
                pytest.skip(f"{type(store).__name__} cannot find lapsed reservations")
            with pytest.raises(InvalidValue) as info:
                uow.lapsed_positions(_AT, "10")  # type: ignore[arg-type]
            assert info.value.field == "limit"
            assert uow.lapsed_positions(_AT, -1) == []

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

    @pytest.mark.parametrize(
        ("keys_before", "days_before", "field"),
        [
            (datetime(2026, 3, 1), None, "keys_before"),  # no time zone
            ("2026-03-01", None, "keys_before"),
            (None, "2026-03-01", "days_before"),
            (None, _AT, "days_before"),  # a moment, not a day
        ],
    )
    def test_housekeeping_refuses_a_malformed_cut_off_and_deletes_nothing(
        self, store: Store, keys_before: object, days_before: object, field: str
    ) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(_order("O-1"))
            uow.idempotency.add(IdempotencyRecord("K-1", OrderId("O-1"), "f", _AT - timedelta(days=90)))
            uow.commit()
        with store.unit_of_work() as uow:
            assert isinstance(uow, Housekeeping)
            with pytest.raises(InvalidValue) as info:
                uow.purge(keys_before=keys_before, days_before=days_before)  # type: ignore[arg-type]
            assert info.value.field == field
        with store.unit_of_work() as uow:
            assert uow.idempotency.get("K-1") is not None

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
