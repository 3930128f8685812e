"""The application object: what a developer builds with :func:`ordercore.bootstrap` and talks to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Self

import attrs

from ordercore.errors import (
    ConcurrencyConflict,
    EventHandlerFailed,
    IllegalTransition,
    InvalidValue,
    ReevaluationFailed,
    SourcingFailed,
    StoreUnavailable,
)
from ordercore.events import OrderEvent
from ordercore.inventory import NodeStates, ReservationKind, StockPosition
from ordercore.inventory.ledger import check_reason
from ordercore.lifecycle import Lifecycle, State
from ordercore.order import Order, check_code
from ordercore.ports import (
    BackorderSummary,
    Clock,
    HeldOrder,
    Housekeeping,
    LapsedReservations,
    OrderAge,
    OrderReports,
    Store,
    UnitOfWork,
)
from ordercore.rules.context import order_context
from ordercore.rules.engine import Decision, evaluate
from ordercore.rules.model import Outcome, RuleSet, Stage
from ordercore.service.commands import (
    Command,
    CountStock,
    ReceiveStock,
    ReevaluateOrder,
    ResourceOrder,
    SetNodeOnline,
)
from ordercore.service.handlers import CommandResult, Services
from ordercore.service.messagebus import E, HandlerFailure, MessageBus
from ordercore.service.rules import RULES_ACTOR, rule_inputs
from ordercore.service.sourcing import withdrawable
from ordercore.storage import MAX_LIMIT
from ordercore.values import Actor, OrderId, Sku, check_aware

__all__ = ["OPERATOR", "DecisionChange", "HoldAging", "OrderCore", "WhatIf"]

#: Who switches nodes online and offline when the caller names nobody.
OPERATOR = Actor.system("operator")
#: how many times :meth:`OrderCore.expire_reservations` tries one position that other writers keep changing
_EXPIRY_ATTEMPTS = 5


class OrderCore:
    """Commands in (:meth:`handle`), orders and their history out. Close it (or use ``with``) when done."""

    def __init__(self, store: Store, bus: MessageBus) -> None:
        self.store = store
        self.bus = bus

    @property
    def services(self) -> Services:
        return self.bus.services

    @property
    def lifecycle(self) -> Lifecycle:
        return self.bus.services.lifecycle

    @property
    def clock(self) -> Clock:
        return self.bus.services.clock

    def handle(self, command: Command) -> CommandResult:
        """Carry out a command; see :class:`~ordercore.service.messagebus.MessageBus` for what follows.

        With a rule set, stock received or counted sends the orders held by inventory rules through the
        rules again (each in its own transaction), so a stock hold clears when the stock is there. The
        stock command committed by then: a re-evaluation that fails is recorded (``failures``, as the bus
        records a failing event handler) and the command's result still reaches the caller, who must not
        run it again."""
        result = self.bus.handle(command)
        if isinstance(command, ReceiveStock | CountStock) and self.services.rules is not None:
            failures: list[HandlerFailure] = []

            def failed(what: str, e: Exception) -> None:
                if isinstance(e, EventHandlerFailed):  # a strict bus: its failures are recorded already
                    failures.extend(e.failures)
                else:
                    self.bus.record_failure("", type(command).__name__, what, e, failures)

            try:
                codes = self.services.rules.codes(stages=[Stage.INVENTORY])
                if codes:
                    self._reevaluate_held(
                        codes,
                        f"stock of {command.sku} at {command.node_id} changed",
                        lambda order_id, e: failed(f"re-evaluation of {order_id}", e),
                        sku=command.sku,
                    )
            except Exception as e:  # recorded: the stock command committed
                failed("re-evaluation of held orders", e)
            if failures and self.bus.strict:
                raise EventHandlerFailed(failures)
        return result

    # -- rules -----------------------------------------------------------------------------------------
    @property
    def rules(self) -> RuleSet | None:
        """The rule set orders are evaluated with (None: no rules)."""
        return self.services.rules

    def use_rules(self, rules: RuleSet | None) -> RuleSet | None:
        """Evaluate orders from now on with ``rules`` (a new version, say, after :meth:`what_if` showed
        what it changes); returns the previous set. Orders already decided keep their decisions until
        something sends them through the rules again."""
        if rules is not None and not isinstance(rules, RuleSet):
            raise InvalidValue("must be a RuleSet or None", field="rules", value=rules)
        previous = self.services.rules
        self.bus.services = attrs.evolve(self.services, rules=rules)
        return previous

    def reevaluate_held(self, codes: Iterable[str] | None = None, *, reason: str) -> list[CommandResult]:
        """Run the rule set again on every order held for one of ``codes`` (by default every order the rules
        hold, whatever its codes: those of an earlier rule set too, after :meth:`use_rules`; not one held
        by people only). Call it when something rules read changed outside
        ordercore: payments authorised, credit limits raised, fraud reviews done. An order that fails does
        not stop the others: once every order was tried, :class:`~ordercore.errors.ReevaluationFailed` is
        raised, naming each failed order with its error
        and holding the results of the others; re-evaluating again is harmless."""
        if codes is not None and (isinstance(codes, str) or not isinstance(codes, Iterable)):
            raise InvalidValue(
                "must be a collection of hold codes, or None for all", field="codes", value=codes
            )
        if codes is not None:
            codes = list(codes)
            for i, code in enumerate(codes):
                check_code(code, f"codes[{i}]")
        check_reason(reason)  # before any order is read: a bad reason fails every one of them
        failures: list[tuple[OrderId, Exception]] = []
        results = self._reevaluate_held(codes, reason, lambda order_id, e: failures.append((order_id, e)))
        if failures:  # every order was tried
            raise ReevaluationFailed(failures, results) from failures[0][1]
        return results

    def _reevaluate_held(
        self,
        codes: Iterable[str] | None,
        reason: str,
        failed: Callable[[OrderId, Exception], object],
        sku: Sku | None = None,
    ) -> list[CommandResult]:
        """Re-evaluate the orders held for ``codes``, each in its own command (only those with a line of
        ``sku``, when given); an order that fails goes to ``failed`` and does not stop the others. Without
        ``codes``, every order the rules hold, whatever its codes (one an earlier rule set gave, before
        :meth:`use_rules`, too)."""
        rules = self.services.rules
        if rules is None:
            return []
        if codes is None:
            ids = {h.order_id for h in self.held_orders(limit=MAX_LIMIT)}  # every one
        else:
            ids = {h.order_id for code in set(codes) for h in self.held_orders(code, limit=MAX_LIMIT)}
        results = []
        for order_id in sorted(ids, key=lambda i: i.value):
            if sku is not None or codes is None:
                order = self.get_order(order_id)
                if sku is not None and not any(line.sku == sku for line in order.lines):
                    continue  # the stock that changed is none of this order's
                if codes is None and not any(h.actor == RULES_ACTOR for h in order.holds):
                    continue  # held by people only: the rules release none of it (a release runs them)
            try:
                results.append(self.handle(ReevaluateOrder(order_id=order_id, reason=reason)))
            except IllegalTransition:  # the order moved on meanwhile (cancelled by someone): nothing to do
                continue
            except Exception as e:  # this order failed; the others are still re-evaluated
                failed(order_id, e)
        return results

    def hold_aging(self, *, now: datetime | None = None) -> list[HoldAging]:
        """Active holds per reason code: how many, the oldest (order and when it was placed) and its age,
        longest-waiting code first."""
        if now is not None:
            check_aware(now, "now")
        at = now or self.clock.now()
        by_code: dict[str, list[HeldOrder]] = {}
        for hold in self.held_orders(limit=MAX_LIMIT):
            by_code.setdefault(hold.code, []).append(hold)
        aging = [
            HoldAging(code, len(holds), oldest.order_id, oldest.placed_at, at - oldest.placed_at)
            for code, holds in by_code.items()
            for oldest in [min(holds, key=lambda h: h.placed_at)]
        ]
        return sorted(aging, key=lambda a: (-a.oldest_age, a.code))

    def what_if(self, rules: RuleSet, order_ids: Iterable[OrderId | str]) -> WhatIf:
        """Evaluate ``rules`` and the current rule set on stored orders, now, and report whose decision
        would change. Nothing is written. Without a current rule set every order counts as accepted."""
        if not isinstance(rules, RuleSet):
            raise InvalidValue("must be a RuleSet", field="rules", value=rules)
        if isinstance(order_ids, str) or not isinstance(order_ids, Iterable):
            raise InvalidValue("must be a collection of order ids", field="order_ids", value=order_ids)
        current = self.services.rules
        changes: list[DecisionChange] = []
        evaluated = 0
        with self.store.unit_of_work() as uow:
            inputs = rule_inputs(uow, self.services, self.clock.now())
            for raw in order_ids:
                order = uow.orders.get(OrderId.parse(raw) if isinstance(raw, str) else raw)
                ctx = order_context(order, inputs)
                after = evaluate(rules, ctx, explain=False)
                before = evaluate(current, ctx, explain=False) if current is not None else None
                evaluated += 1
                old = (Outcome.ACCEPT, frozenset(), None) if before is None else _gist(before)
                if old != _gist(after):
                    changes.append(DecisionChange(order.id, before, after))
        return WhatIf(evaluated, tuple(changes))

    def get_order(self, order_id: OrderId | str) -> Order:
        """The order as last committed (OrderNotFound if there is none)."""
        with self.store.unit_of_work() as uow:
            return uow.orders.get(OrderId.parse(order_id))

    def history(self, order_id: OrderId | str) -> list[OrderEvent]:
        return list(self.get_order(order_id).history)

    def list_orders(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        with self.store.unit_of_work() as uow:
            return uow.orders.list_ids(status=status, after=after, limit=limit)

    # -- read models -----------------------------------------------------------------------------------
    def orders_aging(
        self, status: State, *, older_than: datetime | timedelta | None = None, limit: int = 100
    ) -> list[OrderAge]:
        """Orders in ``status``, longest in it first (``since``: when they entered it); with
        ``older_than`` (a time, or an age counted back from the clock's now) only those in it since before
        then."""
        cutoff = (
            _before(self.clock.now(), older_than, "older_than")
            if isinstance(older_than, timedelta)
            else older_than
        )
        with self.store.unit_of_work() as uow:
            return _reports(uow).orders_by_status(status, older_than=cutoff, limit=limit)

    def held_orders(self, code: str | None = None, *, limit: int = 100) -> list[HeldOrder]:
        """Active holds (only those of ``code``, if given), oldest first."""
        if code is not None:
            check_code(code, "code")
        with self.store.unit_of_work() as uow:
            return _reports(uow).held_orders(code, limit=limit)

    def backorders(self, sku: Sku | str | None = None) -> list[BackorderSummary]:
        """Backordered units per SKU (only ``sku``, if given), with the lines waiting, sorted by SKU."""
        wanted = Sku(sku) if isinstance(sku, str) else sku
        with self.store.unit_of_work() as uow:
            return _reports(uow).backorders_by_sku(wanted)

    def purge(
        self, *, keys_older_than: timedelta | None = timedelta(days=30), capacity_before: date | None = None
    ) -> tuple[int, int]:
        """Housekeeping: delete idempotency keys recorded more than ``keys_older_than`` ago (a retry after
        that is treated as a new request) and node capacity rows of days before ``capacity_before``
        (today, by the clock, when not given; past days are never sourced again). Returns how many keys
        and days were deleted. None keeps that kind. Run it from a scheduler, say daily."""
        if keys_older_than is not None and (
            not isinstance(keys_older_than, timedelta) or keys_older_than < timedelta(0)
        ):
            raise InvalidValue(
                "must be a duration of zero or more", field="keys_older_than", value=keys_older_than
            )
        if capacity_before is not None and (
            not isinstance(capacity_before, date) or isinstance(capacity_before, datetime)
        ):
            raise InvalidValue("must be a date", field="capacity_before", value=capacity_before)
        now = self.clock.now()
        keys_before = None if keys_older_than is None else _before(now, keys_older_than, "keys_older_than")
        with self.store.unit_of_work() as uow:
            if not isinstance(uow, Housekeeping):
                raise StoreUnavailable(f"{type(self.store).__name__} offers no housekeeping")
            return uow.purge(keys_before=keys_before, days_before=capacity_before or now.date())

    def expire_reservations(self, *, limit: int = 1000) -> int:
        """Housekeeping: record the lapse (EXPIRED) of every soft reservation whose expiry has passed, now
        by the clock, at up to ``limit`` stock positions, each in a unit of work of its own (retried when
        another writer changed the position meanwhile); returns how many reservations expired. A lapsed
        cart already stops counting against what is available; expiring it frees its key and takes it out
        of the store, which otherwise keeps every cart nobody checked out. Run it from a scheduler, say
        every few minutes, and again while it returns a full batch."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue("must be a positive integer", field="limit", value=limit)
        at = self.clock.now()
        with self.store.unit_of_work() as uow:
            if not isinstance(uow, LapsedReservations):
                raise StoreUnavailable(f"{type(self.store).__name__} cannot find lapsed reservations")
            found = uow.lapsed_positions(at, limit)
        expired = 0
        for node_id, sku in found:
            for attempt in range(1, _EXPIRY_ATTEMPTS + 1):
                try:
                    with self.store.unit_of_work() as uow:
                        position = uow.inventory.get(node_id, sku)
                        keys = [] if position is None else position.expire(at)
                        if position is not None and keys:
                            uow.inventory.save(position)
                            uow.commit()
                except ConcurrencyConflict:
                    if attempt == _EXPIRY_ATTEMPTS:
                        raise
                    continue
                expired += len(keys)
                break
        return expired

    def stock(self, node_id: str, sku: Sku | str) -> StockPosition | None:
        """The stock position of ``sku`` at ``node_id`` as last committed, or None."""
        with self.store.unit_of_work() as uow:
            return uow.inventory.get(node_id, sku if isinstance(sku, Sku) else Sku(sku))

    def available(self, sku: Sku | str, *, at: datetime | None = None) -> dict[str, int]:
        """Available-to-promise of ``sku`` per node (as of ``at``, now by default); sum it for the network."""
        if at is not None:
            check_aware(at, "at")
        when = at or self.clock.now()
        with self.store.unit_of_work() as uow:
            positions = uow.inventory.for_sku(sku if isinstance(sku, Sku) else Sku(sku))
        return {p.node_id: p.available(when) for p in positions}

    def set_node_online(
        self,
        node_id: str,
        online: bool,
        *,
        resource: bool = True,
        actor: Actor = OPERATOR,
        reason: str = "",
    ) -> list[CommandResult]:
        """Switch a fulfilment node online or offline, for every worker of the store
        (:class:`~ordercore.service.commands.SetNodeOnline`). Taking a node offline with ``resource``
        then sources again the units it holds for orders but has not been released to ship yet, and
        returns those results: every order committed before the switch is found, and a sourcing that read
        the node states before the switch and commits after it fails and runs again (see
        :class:`~ordercore.ports.NodeStateRepository`). An order on hold gives its units back, to be sourced
        when it can be. Saying offline again re-sources whatever is still held there; an order that could
        not be taken back does not stop the others, and ``SourcingFailed`` then names each, after the rest
        are done."""
        self.handle(SetNodeOnline(node_id=node_id, online=online, actor=actor, reason=reason))
        if online or not resource:
            return []
        why = reason or f"{node_id} offline"
        results: list[CommandResult] = []
        failed: list[str] = []
        for order_id in self._orders_sourced_at(node_id):
            try:
                results.append(
                    self.handle(ResourceOrder(order_id=order_id, node_id=node_id, actor=actor, reason=why))
                )
            except Exception as e:  # the others are still moved; this one is named below
                failed.append(f"{order_id}: {type(e).__name__}: {e}")
        if failed:
            raise SourcingFailed(
                f"{node_id} is offline, but {len(failed)} of its orders could not be taken back"
                " (set it offline again to retry them)",
                reasons=failed,
            )
        return results

    def node_states(self) -> NodeStates:
        """Which nodes the store keeps offline, with who switched them, when and why."""
        with self.store.unit_of_work() as uow:
            return uow.nodes.current()

    def _orders_sourced_at(self, node_id: str) -> list[OrderId]:
        """Orders holding units at ``node_id`` that can still be taken back, found through the hard
        reservations of the node's stock positions (every allocation holds one, its reference the order),
        not by reading every order."""
        with self.store.unit_of_work() as uow:
            references = {
                r.reference
                for position in uow.inventory.for_node(node_id)
                for r in position.reservations.values()
                if r.kind is ReservationKind.HARD
            }
            found: list[OrderId] = []
            for reference in sorted(references):
                try:
                    order_id = OrderId(reference)
                except InvalidValue:  # held for something that is not an order
                    continue
                order = uow.orders.find(order_id)
                if order is not None and withdrawable(order, node_id):
                    found.append(order.id)
        return found

    def subscribe(
        self, event_type: type[E], handler: Callable[[E], Command | Sequence[Command] | None]
    ) -> None:
        self.bus.subscribe(event_type, handler)

    def relay_outbox(self) -> int:
        return self.bus.relay_outbox()

    @property
    def failures(self) -> Sequence[HandlerFailure]:
        return tuple(self.bus.failures)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@attrs.frozen
class HoldAging:
    """Active holds of one reason ``code``: how many, and the oldest one's order, start and age."""

    code: str
    count: int
    oldest_order_id: OrderId
    oldest_since: datetime
    oldest_age: timedelta


@attrs.frozen
class DecisionChange:
    """An order whose decision a new rule set would change (``before`` is None without a current set)."""

    order_id: OrderId
    before: Decision | None
    after: Decision

    def describe(self) -> str:
        def gist(d: Decision | None) -> str:
            if d is None:
                return "accept (no rules)"
            codes = sorted(d.hold_codes) or ([d.rejection[0]] if d.rejection else [])
            return d.outcome.value + (f" {', '.join(codes)}" if codes else "")

        return f"{self.order_id}: {gist(self.before)} -> {gist(self.after)}"


@attrs.frozen
class WhatIf:
    """What a new rule set would change: how many orders were evaluated, and those whose decision moves."""

    evaluated: int
    changes: tuple[DecisionChange, ...]


def _gist(d: Decision) -> tuple[Outcome, frozenset[str], str | None]:
    return d.outcome, d.hold_codes, d.rejection[0] if d.rejection else None


def _before(now: datetime, age: timedelta, field: str) -> datetime:
    """``now`` minus ``age``; InvalidValue naming ``field`` for an age that leaves the range of datetimes."""
    try:
        return now - age
    except OverflowError:
        raise InvalidValue(
            "reaches beyond the times a datetime can hold (years 1 to 9999)", field=field, value=age
        ) from None


def _reports(uow: UnitOfWork) -> OrderReports:
    """The read models of a unit of work's store: its order repository, when it keeps them."""
    orders = uow.orders
    if not isinstance(orders, OrderReports):
        raise StoreUnavailable(f"{type(orders).__name__} keeps no read models")
    return orders
