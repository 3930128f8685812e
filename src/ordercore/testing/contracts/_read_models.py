"""The contract of the read models: orders by status, held orders, backorders, recent orders."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ordercore.clock import ManualClock
from ordercore.errors import (
    ConcurrencyConflict,
    InvalidValue,
)
from ordercore.ids import SequentialIds
from ordercore.lifecycle import DEFAULT_LIFECYCLE, OrderStatus
from ordercore.lines import NewLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import (
    BackorderedLine,
    BackorderSummary,
    HeldOrder,
    OrderAge,
    OrderDigest,
    RecentOrders,
    Store,
)
from ordercore.service.bootstrap import bootstrap
from ordercore.service.commands import HoldOrder
from ordercore.storage import backorder_rows, hold_rows, status_since, summarise_backorders
from ordercore.testing.contracts._support import (
    _ACTOR,
    _ADDRESS,
    _AT,
    ContractBase,
    _one_unit,
    _placed_at,
    _recent,
    _reports,
)
from ordercore.values import (
    Channel,
    CustomerId,
    CustomerRef,
    LineId,
    OrderId,
    Sku,
)


class ReadModelContract(ContractBase):
    """The read models operators query, and a customer's recent orders."""

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
        placed = app.handle(_one_unit())
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
