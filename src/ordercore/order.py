"""The order aggregate.

An :class:`Order` changes only through its methods. Each method checks everything first (input, quantity
buckets, the lifecycle), raises a typed error and changes nothing if any check fails, and otherwise records
exactly one domain event and applies it. ``Order.replay(order.history)`` rebuilds an equal order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, Rounded, localcontext
from typing import Any, TypeVar

import attrs

from ordercore.errors import (
    HoldNotFound,
    InvalidValue,
    LineNotFound,
    OrderCoreError,
    Problem,
    QuantityExceeded,
    ValidationFailed,
)
from ordercore.events import (
    AllocationWithdrawn,
    DeliveryRecorded,
    HoldApplied,
    HoldReleased,
    LineQty,
    LineQuantityChanged,
    LinesAllocated,
    LinesBackordered,
    LinesCancelled,
    LinesEvent,
    LinesReleased,
    NodeAllocation,
    NodeRejected,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    ReturnRecorded,
    RulesEvaluated,
    RuleVerdict,
    ShipmentRecorded,
    ShippingAddressChanged,
    SourcingPlanned,
    StatusChanged,
    WaitingUnits,
)
from ordercore.lifecycle import (
    DEFAULT_LIFECYCLE,
    Lifecycle,
    OrderStatus,
    State,
    Trigger,
    Triggers,
    derive_status,
)
from ordercore.lines import (
    BUCKETS,
    NO_ATTRIBUTES,
    Adjustment,
    LineQuantities,
    NewLine,
    OrderLine,
    TaxLine,
    frozen_attributes,
)
from ordercore.money import Money, exact_money, sum_money
from ordercore.values import (
    Actor,
    Address,
    Channel,
    CustomerRef,
    LineId,
    OrderId,
    check_aware,
    check_quantity,
    check_text_fault,
    text_fault,
)

__all__ = ["Hold", "Order", "OrderTotals", "UnitsByLine", "check_code"]

#: Units by line, keyed by line id or its string form: ``{"1": 2, LineId("2"): 1}``.
UnitsByLine = Mapping[LineId, int] | Mapping[str, int] | Mapping[LineId | str, int]

_E = TypeVar("_E", bound=OrderEvent)
_L = TypeVar("_L", bound=LinesEvent)


# What each bucket event moves: (source buckets drawn in order, target bucket), as positions in BUCKETS.
def _by_index(sources: tuple[str, ...], target: str) -> tuple[tuple[int, ...], int]:
    return tuple(BUCKETS.index(s) for s in sources), BUCKETS.index(target)


_MOVES: dict[type[OrderEvent], tuple[tuple[int, ...], int]] = {
    LinesAllocated: _by_index(("open", "backordered"), "allocated"),
    LinesBackordered: _by_index(("open",), "backordered"),
    LinesReleased: _by_index(("allocated",), "released"),
    ShipmentRecorded: _by_index(("released", "allocated", "open"), "shipped"),
    DeliveryRecorded: _by_index(("shipped",), "delivered"),
    ReturnRecorded: _by_index(("delivered",), "returned"),
    LinesCancelled: _by_index(("open", "backordered", "allocated"), "cancelled"),
    OrderCancelled: _by_index(("open", "backordered", "allocated"), "cancelled"),
    AllocationWithdrawn: _by_index(("allocated", "released"), "open"),
}


@attrs.frozen
class Hold:
    """An active hold: why (``code``, ``message``), who placed it and when."""

    code: str
    message: str
    actor: Actor
    placed_at: datetime


@attrs.frozen
class OrderTotals:
    """The order's amounts for its live (not cancelled) quantities, exact to the minor unit.

    ``grand_total = subtotal - discount_total + tax_total + shipping_total``.
    """

    subtotal: Money
    line_discounts: Money
    order_discounts: Money
    discount_total: Money
    tax_total: Money
    shipping_total: Money
    grand_total: Money


def _plain_totals(order: Order) -> OrderTotals | None:
    """``order.totals()`` for the usual order, summed on the amounts themselves rather than through a
    ``Money`` per step: no line with cancelled units (nothing is pro-rated), every amount a ``Money`` of the
    order's currency. The sums are made in the current decimal context with ``Rounded`` trapped, so each
    is exact and keeps the currency's exponent, hence what :meth:`Order._totals` gives; None (work them out
    in full) for any other order, or where a sum would have to drop a digit, even a trailing zero (amounts
    beyond the context's precision, which ``_totals`` refuses as it always did)."""
    if not any(line.qty.ordered for line in order.lines):
        return None  # nothing live: no discount nor shipping is due, as the full path says
    cur = order.currency
    zero = Money.zero(cur).amount

    def total(items: Iterable[Adjustment | TaxLine]) -> Decimal | None:
        amount = zero
        for item in items:
            m = item.amount
            if type(m) is not Money or m.currency != cur:
                return None
            amount += m.amount
        return amount

    try:
        with localcontext() as ctx:
            ctx.traps[Rounded] = True
            subtotal = line_disc = tax = zero
            for line in order.lines:
                price, qty = line.unit_price, line.qty
                if qty.cancelled or type(price) is not Money or price.currency != cur:
                    return None
                discounts, taxes = total(line.discounts), total(line.taxes)
                if discounts is None or taxes is None:
                    return None
                subtotal += price.amount * qty.ordered
                line_disc += discounts
                tax += taxes
            order_disc = total(order.discounts)
            shipping = total(order.shipping_charges)
            shipping_tax = total(order.shipping_taxes)
            if order_disc is None or shipping is None or shipping_tax is None:
                return None
            order_disc = min(order_disc, subtotal - line_disc)  # never more than the net itself
            tax += shipping_tax
            discount_total = line_disc + order_disc
            grand_total = subtotal - discount_total + tax + shipping
    except Rounded:
        return None
    return OrderTotals(
        subtotal=exact_money(subtotal, cur),
        line_discounts=exact_money(line_disc, cur),
        order_discounts=exact_money(order_disc, cur),
        discount_total=exact_money(discount_total, cur),
        tax_total=exact_money(tax, cur),
        shipping_total=exact_money(shipping, cur),
        grand_total=exact_money(grand_total, cur),
    )


def _totals_of(lines: Iterable[OrderLine]) -> LineQuantities:
    # sums of valid quantities are valid (and an order has at least one line): no need to check again
    return tuple.__new__(LineQuantities, map(sum, zip(*[line.qty for line in lines], strict=True)))


@attrs.define(eq=True)
class Order:
    """The order aggregate. Create one with :meth:`create`; rebuild one with :meth:`replay`."""

    id: OrderId
    channel: Channel
    external_ref: str | None
    customer: CustomerRef
    currency: str
    shipping_address: Address
    billing_address: Address | None
    lines: tuple[OrderLine, ...]
    discounts: tuple[Adjustment, ...]
    shipping_charges: tuple[Adjustment, ...]
    shipping_taxes: tuple[TaxLine, ...]
    service_level: str
    requested_delivery_date: date | None
    attributes: dict[str, str]
    status: State
    created_at: datetime
    updated_at: datetime
    placed_at: datetime | None = None
    accepted: bool = False
    holds: tuple[Hold, ...] = ()
    held_from: State | None = None
    #: units sourced at nodes and not yet shipped, cancelled or withdrawn, with their reservation keys
    allocations: tuple[NodeAllocation, ...] = ()
    version: int = 0
    history: list[OrderEvent] = attrs.field(factory=list)
    lifecycle: Lifecycle = attrs.field(default=DEFAULT_LIFECYCLE, eq=False, repr=False)
    persisted_version: int = attrs.field(default=0, eq=False, repr=False)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        order_id: OrderId,
        channel: Channel,
        customer: CustomerRef,
        currency: str,
        shipping_address: Address,
        lines: Sequence[NewLine],
        actor: Actor,
        at: datetime,
        billing_address: Address | None = None,
        external_ref: str | None = None,
        discounts: Sequence[Adjustment] = (),
        shipping_charges: Sequence[Adjustment] = (),
        shipping_taxes: Sequence[TaxLine] = (),
        service_level: str = "standard",
        requested_delivery_date: date | None = None,
        attributes: Mapping[str, str] | None = None,
        lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
        reason: str = "",
    ) -> Order:
        """A new draft order. Every problem with the input is reported at once in :class:`ValidationFailed`."""
        problems: list[Problem] = []

        def expect(name: str, value: object, kind: type | tuple[type, ...], what: str) -> bool:
            if isinstance(value, kind):
                return True
            problems.append(Problem(name, InvalidValue.code, f"must be {what}", value))
            return False

        expect("order_id", order_id, OrderId, "an OrderId")
        expect("channel", channel, Channel, "a Channel")
        expect("customer", customer, CustomerRef, "a CustomerRef")
        expect("shipping_address", shipping_address, Address, "an Address")
        if billing_address is not None:
            expect("billing_address", billing_address, Address, "an Address")
        if external_ref is not None and (
            not isinstance(external_ref, str) or not 0 < len(external_ref) <= 128
        ):
            problems.append(
                Problem("external_ref", InvalidValue.code, "must be 1-128 characters", external_ref)
            )
        elif external_ref is not None and (fault := text_fault(external_ref)) is not None:
            problems.append(Problem("external_ref", InvalidValue.code, fault, external_ref))
        if not isinstance(service_level, str) or not 0 < len(service_level) <= 64:
            problems.append(
                Problem("service_level", InvalidValue.code, "must be 1-64 characters", service_level)
            )
        elif (fault := text_fault(service_level)) is not None:
            problems.append(Problem("service_level", InvalidValue.code, fault, service_level))
        if requested_delivery_date is not None and (
            not isinstance(requested_delivery_date, date) or isinstance(requested_delivery_date, datetime)
        ):
            problems.append(
                Problem(
                    "requested_delivery_date", InvalidValue.code, "must be a date", requested_delivery_date
                )
            )
        attrs_dict: Mapping[str, str] = NO_ATTRIBUTES
        if attributes is not None:
            try:
                attrs_dict = frozen_attributes(attributes)
            except InvalidValue as e:
                problems.append(e.problem())
        currency_ok = True
        try:
            Money.zero(currency)
        except OrderCoreError:
            currency_ok = False
            problems.append(
                Problem("currency", "invalid_money", "is not an ISO 4217 currency code", currency)
            )
        try:
            check_aware(at, "at")
        except InvalidValue as e:
            problems.append(e.problem())
        if not isinstance(actor, Actor):
            problems.append(Problem("actor", InvalidValue.code, "must be an Actor", actor))

        def money_in(name: str, m: Money) -> None:
            if currency_ok and m.currency != currency:
                problems.append(
                    Problem(name, "currency_mismatch", f"is in {m.currency}, the order in {currency}", m)
                )

        built: list[OrderLine] = []
        seen_ids: set[LineId] = set()
        if not isinstance(lines, Sequence) or isinstance(lines, str) or not lines:
            problems.append(Problem("lines", InvalidValue.code, "must hold at least one line", lines))
            lines = ()
        for i, new in enumerate(lines):
            where = f"lines[{i}]"
            if not isinstance(new, NewLine):
                problems.append(Problem(where, InvalidValue.code, "must be a NewLine", new))
                continue
            line_id = new.line_id or LineId(str(i + 1))
            if line_id in seen_ids:
                problems.append(
                    Problem(f"{where}.line_id", InvalidValue.code, "is used by another line", line_id)
                )
            seen_ids.add(line_id)
            money_in(f"{where}.unit_price", new.unit_price)
            if new.unit_price.is_negative:
                problems.append(
                    Problem(f"{where}.unit_price", "invalid_money", "must not be negative", new.unit_price)
                )
            for j, d in enumerate(new.discounts):
                money_in(f"{where}.discounts[{j}].amount", d.amount)
            for j, t in enumerate(new.taxes):
                money_in(f"{where}.taxes[{j}].amount", t.amount)
            if (
                currency_ok
                and all(d.amount.currency == currency for d in new.discounts)
                and new.unit_price.currency == currency
            ):
                gross = new.unit_price * new.quantity
                disc = sum_money((d.amount for d in new.discounts), currency)
                if disc > gross:
                    problems.append(
                        Problem(
                            f"{where}.discounts",
                            InvalidValue.code,
                            f"add up to {disc}, more than the line's {gross}",
                            disc,
                        )
                    )
            built.append(OrderLine.from_new(new, line_id))
        for j, d in enumerate(discounts):
            money_in(f"discounts[{j}].amount", d.amount)
        for j, c in enumerate(shipping_charges):
            money_in(f"shipping_charges[{j}].amount", c.amount)
        for j, t in enumerate(shipping_taxes):
            money_in(f"shipping_taxes[{j}].amount", t.amount)
        if not problems and discounts:  # with none, nothing can exceed the lines' net (never negative)
            net = sum_money((line.net for line in built), currency)
            order_disc = sum_money((d.amount for d in discounts), currency)
            if order_disc > net:
                problems.append(
                    Problem(
                        "discounts",
                        InvalidValue.code,
                        f"add up to {order_disc}, more than the lines' {net}",
                        order_disc,
                    )
                )
        if problems:
            raise ValidationFailed(problems, subject="order")
        event = OrderCreated(
            order_id=order_id,
            sequence=1,
            occurred_at=at,
            actor=actor,
            status=lifecycle.initial,
            reason=reason,
            channel=channel,
            external_ref=external_ref,
            customer=customer,
            currency=currency,
            shipping_address=shipping_address,
            billing_address=billing_address,
            lines=tuple(built),
            discounts=tuple(discounts),
            shipping_charges=tuple(shipping_charges),
            shipping_taxes=tuple(shipping_taxes),
            service_level=service_level,
            requested_delivery_date=requested_delivery_date,
            attributes=attrs_dict,
        )
        return cls._from_created(event, lifecycle)

    @classmethod
    def _from_created(cls, ev: OrderCreated, lifecycle: Lifecycle) -> Order:
        return cls(
            id=ev.order_id,
            channel=ev.channel,
            external_ref=ev.external_ref,
            customer=ev.customer,
            currency=ev.currency,
            shipping_address=ev.shipping_address,
            billing_address=ev.billing_address,
            lines=ev.lines,
            discounts=ev.discounts,
            shipping_charges=ev.shipping_charges,
            shipping_taxes=ev.shipping_taxes,
            service_level=ev.service_level,
            requested_delivery_date=ev.requested_delivery_date,
            attributes=dict(ev.attributes),
            status=ev.status,
            created_at=ev.occurred_at,
            updated_at=ev.occurred_at,
            version=1,
            history=[ev],
            lifecycle=lifecycle,
        )

    @classmethod
    def replay(cls, events: Iterable[OrderEvent], lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> Order:
        """Rebuild an order from its history. The first event must be :class:`OrderCreated`, and sequence
        numbers must run 1, 2, 3... without gaps."""
        it = iter(events)
        first = next(it, None)
        if not isinstance(first, OrderCreated) or first.sequence != 1:
            raise InvalidValue("must start with OrderCreated, sequence 1", field="history[0]", value=first)
        order = cls._from_created(first, lifecycle)
        for ev in it:
            if ev.order_id != order.id or ev.sequence != order.version + 1:
                raise InvalidValue(
                    f"expected event {order.version + 1} of order {order.id}",
                    field=f"history[{order.version}]",
                    value=ev,
                )
            order._record(ev)
        return order

    # -- reading ------------------------------------------------------------------------------------------
    def line(self, line_id: LineId | str) -> OrderLine:
        lid = LineId.parse(line_id)
        for line in self.lines:
            if line.id == lid:
                return line
        raise LineNotFound(self.id, lid)

    @property
    def quantities(self) -> LineQuantities:
        """The buckets summed over all lines."""
        return _totals_of(self.lines)

    @property
    def is_final(self) -> bool:
        return self.status.final

    def totals(self) -> OrderTotals:
        fast = _plain_totals(self)
        return fast if fast is not None else self._totals()

    def _totals(self) -> OrderTotals:
        """:meth:`totals` worked out in full, for any order (see :func:`_plain_totals`)."""
        cur = self.currency
        zero = Money.zero(cur)
        subtotal = sum_money((line.gross for line in self.lines), cur)
        line_disc = sum_money((line.discount_total for line in self.lines), cur)
        tax = sum_money((line.tax_total for line in self.lines), cur)
        live = self.quantities.live
        order_disc = sum_money((d.amount for d in self.discounts), cur)
        if live == 0:
            order_disc = shipping = zero
        else:
            live_net = subtotal - line_disc
            ordered_net = sum_money(
                (
                    line.ordered_gross - sum_money((d.amount for d in line.discounts), cur)
                    for line in self.lines
                ),
                cur,
            )
            if live_net != ordered_net and not order_disc.is_zero:
                # pro-rate order-level discounts by the share of the net amount still live
                order_disc = order_disc.allocate([live_net.minor, (ordered_net - live_net).minor])[0]
            # and never more than the net itself (a line edited down can leave less to discount)
            order_disc = min(order_disc, live_net)
            shipping = sum_money((c.amount for c in self.shipping_charges), cur)
            tax = tax + sum_money((t.amount for t in self.shipping_taxes), cur)
        discount_total = line_disc + order_disc
        return OrderTotals(
            subtotal=subtotal,
            line_discounts=line_disc,
            order_discounts=order_disc,
            discount_total=discount_total,
            tax_total=tax,
            shipping_total=shipping,
            grand_total=subtotal - discount_total + tax + shipping,
        )

    def clone(self) -> Order:
        """An independent copy (the history list and attributes are copied; everything else is immutable)."""
        copy = Order(*[getattr(self, name) for name in _ORDER_FIELDS])  # faster than attrs.evolve
        copy.history = list(self.history)
        copy.attributes = dict(self.attributes)
        return copy

    def new_events(self) -> list[OrderEvent]:
        """Events recorded since the order was loaded or last saved."""
        return self.history[self.persisted_version :]

    def timeline(self) -> list[str]:
        """A human-readable line per event."""
        out = []
        for ev in self.history:
            detail = _describe(ev)
            why = f" - {ev.reason}" if ev.reason else ""
            out.append(
                f"{ev.occurred_at.isoformat(timespec='seconds')}  #{ev.sequence:<3} {ev.type:<22} "
                f"-> {ev.status.name:<20} by {ev.actor}{': ' + detail if detail else ''}{why}"
            )
        return out

    # -- decisions ----------------------------------------------------------------------------------------
    def place(self, *, actor: Actor, at: datetime, reason: str = "") -> StatusChanged:
        return self.fire(Triggers.PLACE, actor=actor, at=at, reason=reason)

    def accept(self, *, actor: Actor, at: datetime, reason: str = "") -> StatusChanged:
        return self.fire(Triggers.ACCEPT, actor=actor, at=at, reason=reason)

    def reject(self, *, actor: Actor, at: datetime, reason: str, code: str = "") -> StatusChanged:
        return self.fire(Triggers.REJECT, actor=actor, at=at, reason=reason, code=code)

    def complete(self, *, actor: Actor, at: datetime, reason: str = "") -> StatusChanged:
        return self.fire(Triggers.COMPLETE, actor=actor, at=at, reason=reason)

    def fire(
        self, trigger: Trigger, *, actor: Actor, at: datetime, reason: str = "", code: str = ""
    ) -> StatusChanged:
        """Fire a manual trigger (built-in or user-defined) whose transition has a single target."""
        self._check_stamp(actor, at, reason)
        _check_text(code, "code", 64)
        if not isinstance(trigger, Trigger):
            raise InvalidValue("must be a Trigger of the order's lifecycle", field="trigger", value=trigger)
        if not trigger.manual:
            raise InvalidValue(
                f"{trigger} belongs to an order method and cannot be fired directly",
                field="trigger",
                value=trigger,
            )
        t = self.lifecycle.exit(self, trigger)
        target = t.target  # a manual trigger's transition has exactly one target (checked at definition)
        assert target is not None
        if t.guards or target.name not in t.target_names:  # the common case needs no call
            self.lifecycle.admit(self, t, target)
        # positional arguments, in field order: measurably cheaper on this hot path
        event = StatusChanged(
            self.id, self.version + 1, at, actor, target, reason, trigger, self.status, code
        )
        self._settle(event)  # a decision changes nothing but the status
        return event

    def hold(self, code: str, *, actor: Actor, at: datetime, message: str = "") -> HoldApplied | None:
        """Put the order on hold for ``code``. Holds stack; holding again for an active code does nothing."""
        self._check_stamp(actor, at, message, "message")
        check_code(code)
        if any(h.code == code for h in self.holds):
            return None
        self.lifecycle.check(self, Triggers.HOLD, OrderStatus.ON_HOLD)
        return self._emit(HoldApplied, OrderStatus.ON_HOLD, actor, at, message, code=code, message=message)

    def release_hold(self, code: str, *, actor: Actor, at: datetime, comment: str = "") -> HoldReleased:
        """Release one hold. When the last one goes, the order resumes where it was."""
        self._check_stamp(actor, at, comment, "comment")
        if not any(h.code == code for h in self.holds):
            raise HoldNotFound(self.id, code)
        remaining = tuple(h for h in self.holds if h.code != code)
        if remaining:
            target = OrderStatus.ON_HOLD
        elif self.accepted:
            target = derive_status(self.quantities)
        else:
            target = self.held_from or OrderStatus.PLACED
        self.lifecycle.check(self, Triggers.RELEASE_HOLD, target)
        return self._emit(HoldReleased, target, actor, at, comment, code=code, comment=comment)

    def record_rules(
        self,
        *,
        rule_set: str,
        rule_set_version: str,
        decision: str,
        verdicts: Sequence[RuleVerdict],
        actor: Actor,
        at: datetime,
        reason: str = "",
    ) -> RulesEvaluated:
        """Record what a rule set decided and why (every rule, its inputs, match and message). The status
        does not change: the holds, rejection or acceptance that follow are events of their own."""
        self._check_stamp(actor, at, reason)
        if self.status.final:
            raise InvalidValue(
                f"order {self.id} is {self.status}: rules are no longer evaluated", field="status"
            )
        if decision not in ("accept", "hold", "reject"):
            raise InvalidValue("must be 'accept', 'hold' or 'reject'", field="decision", value=decision)
        return self._emit(
            RulesEvaluated,
            self.status,
            actor,
            at,
            reason,
            rule_set=rule_set,
            rule_set_version=rule_set_version,
            decision=decision,
            verdicts=tuple(verdicts),
        )

    def cancel(self, *, actor: Actor, at: datetime, reason: str) -> OrderCancelled:
        """Cancel every unit that is not yet released to fulfilment."""
        self._check_stamp(actor, at, reason)
        self.lifecycle.check(self, Triggers.CANCEL, OrderStatus.CANCELLED)
        _, moved, totals = self._moved(OrderCancelled, None)
        if totals.live:
            raise InvalidValue(
                "has units released to fulfilment; cancel lines instead", field="order", value=self.id
            )
        return self._emit(OrderCancelled, OrderStatus.CANCELLED, actor, at, reason, lines=moved)

    # -- quantities ---------------------------------------------------------------------------------------
    def cancel_lines(self, lines: UnitsByLine, *, actor: Actor, at: datetime, reason: str) -> LinesCancelled:
        """Cancel some units of some lines (those not yet released)."""
        return self._move_event(LinesCancelled, Triggers.CANCEL_LINES, lines, actor, at, reason)

    def allocate(
        self, lines: UnitsByLine | None = None, *, actor: Actor, at: datetime, reason: str = ""
    ) -> LinesAllocated:
        """Allocate units (all open and backordered units when ``lines`` is None)."""
        return self._move_event(LinesAllocated, Triggers.ALLOCATE, lines, actor, at, reason)

    def backorder(
        self, lines: UnitsByLine, *, actor: Actor, at: datetime, reason: str = ""
    ) -> LinesBackordered:
        return self._move_event(LinesBackordered, Triggers.BACKORDER, lines, actor, at, reason)

    def source(
        self,
        allocations: Sequence[NodeAllocation],
        waiting: Sequence[WaitingUnits] = (),
        *,
        strategy: str,
        cost: Money,
        actor: Actor,
        at: datetime,
        optimal: bool = False,
        notes: Sequence[str] = (),
        rejected: Sequence[NodeRejected] = (),
        reason: str = "",
    ) -> SourcingPlanned:
        """Record a sourcing plan for every open and backordered unit: ``allocations`` ship from nodes,
        ``waiting`` units are backordered (see :func:`ordercore.sourcing.plan_allocations`)."""
        self._check_stamp(actor, at, reason)
        self._require(Triggers.SOURCE)
        allocations, waiting = tuple(allocations), tuple(waiting)
        problems: list[Problem] = []
        per_line: dict[LineId, int] = {}
        keys = {a.key for a in self.allocations}
        known = {ln.id for ln in self.lines}
        for i, a in enumerate(allocations):
            where = f"allocations[{i}]"
            if not isinstance(a, NodeAllocation):
                problems.append(Problem(where, InvalidValue.code, "must be a NodeAllocation", a))
                continue
            if a.line_id not in known:
                problems.append(Problem(f"{where}.line_id", LineNotFound.code, "no such line", a.line_id))
            if type(a.quantity) is not int or a.quantity < 1:
                problems.append(Problem(f"{where}.quantity", InvalidValue.code, "must be >= 1", a.quantity))
                continue
            if not isinstance(a.node_id, str) or not a.node_id or len(a.node_id) > 64:
                problems.append(
                    Problem(f"{where}.node_id", InvalidValue.code, "must be a node id", a.node_id)
                )
            if not isinstance(a.key, str) or not a.key or len(a.key) > 200 or a.key in keys:
                problems.append(
                    Problem(f"{where}.key", InvalidValue.code, "must be a new reservation key", a.key)
                )
            keys.add(a.key)
            per_line[a.line_id] = per_line.get(a.line_id, 0) + a.quantity
        for i, w in enumerate(waiting):
            where = f"waiting[{i}]"
            if not isinstance(w, WaitingUnits):
                problems.append(Problem(where, InvalidValue.code, "must be WaitingUnits", w))
                continue
            if w.line_id not in known:
                problems.append(Problem(f"{where}.line_id", LineNotFound.code, "no such line", w.line_id))
            if type(w.quantity) is not int or w.quantity < 1:
                problems.append(Problem(f"{where}.quantity", InvalidValue.code, "must be >= 1", w.quantity))
                continue
            per_line[w.line_id] = per_line.get(w.line_id, 0) + w.quantity
        if not problems:
            for line in self.lines:
                due = line.qty.open + line.qty.backordered
                if per_line.get(line.id, 0) != due:
                    problems.append(
                        Problem(
                            f"lines[{line.id.value!r}]",
                            InvalidValue.code,
                            f"the plan covers {per_line.get(line.id, 0)} units; {due} are open or backordered",
                            per_line.get(line.id, 0),
                        )
                    )
            if not per_line:
                problems.append(
                    Problem("allocations", InvalidValue.code, "no unit is open or backordered", None)
                )
        if not isinstance(cost, Money):
            problems.append(Problem("cost", InvalidValue.code, "must be Money", cost))
        if not isinstance(strategy, str) or not strategy or len(strategy) > 64:
            problems.append(Problem("strategy", InvalidValue.code, "must be a strategy name", strategy))
        if problems:
            raise ValidationFailed(problems, subject="sourcing plan")
        new_lines = _sourced_lines(self.lines, allocations, waiting)
        target = self._resolve(_totals_of(new_lines))
        self.lifecycle.check(self, Triggers.SOURCE, target)
        return self._emit(
            SourcingPlanned,
            target,
            actor,
            at,
            reason,
            strategy=strategy,
            allocations=allocations,
            waiting=waiting,
            cost=cost,
            optimal=bool(optimal),
            notes=tuple(str(n) for n in notes),
            rejected=tuple(rejected),
        )

    def withdraw_allocation(
        self,
        node_id: str,
        lines: UnitsByLine | None = None,
        *,
        code: str,
        actor: Actor,
        at: datetime,
        reason: str = "",
    ) -> AllocationWithdrawn:
        """Put units sourced at ``node_id`` back to open (all of them when ``lines`` is None): the node
        short-picked (``code="short_pick"``), went offline, or the order is sourced again."""
        check_code(code)
        at_node: dict[LineId, int] = {}
        for a in self.allocations:
            if a.node_id == node_id:
                at_node[a.line_id] = at_node.get(a.line_id, 0) + a.quantity
        if lines is None:
            if not at_node:
                raise InvalidValue(
                    f"order {self.id} has no units sourced at {node_id!r}", field="node_id", value=node_id
                )
            wanted: UnitsByLine = {lid: q for lid, q in at_node.items()}
        else:
            wanted = lines
            moves = self._parse_moves(lines)
            problems = [
                Problem(
                    f"lines[{self.lines[pos].id.value!r}]",
                    InvalidValue.code,
                    f"only {at_node.get(self.lines[pos].id, 0)} units are sourced at {node_id}",
                    n,
                )
                for pos, n in sorted(moves.items())
                if n > at_node.get(self.lines[pos].id, 0)
            ]
            if problems:
                raise ValidationFailed(problems, subject="withdrawal")
        return self._move_event(
            AllocationWithdrawn, Triggers.DEALLOCATE, wanted, actor, at, reason, node_id, code
        )

    def sourced_at(self, node_id: str) -> dict[LineId, int]:
        """Units of each line sourced at ``node_id`` and not yet shipped, cancelled or withdrawn."""
        out: dict[LineId, int] = {}
        for a in self.allocations:
            if a.node_id == node_id:
                out[a.line_id] = out.get(a.line_id, 0) + a.quantity
        return out

    def release(
        self, lines: UnitsByLine | None = None, *, actor: Actor, at: datetime, reason: str = ""
    ) -> LinesReleased:
        """Release allocated units to fulfilment (all allocated units when ``lines`` is None)."""
        return self._move_event(LinesReleased, Triggers.RELEASE, lines, actor, at, reason)

    def ship(
        self,
        lines: UnitsByLine | None = None,
        *,
        shipment_id: str,
        actor: Actor,
        at: datetime,
        carrier: str = "",
        tracking_number: str = "",
        node_id: str = "",
        reason: str = "",
    ) -> ShipmentRecorded:
        """Record a shipment of units (every unit not yet shipped when ``lines`` is None). Units are taken
        from released, then allocated, then open stock."""
        check_code(shipment_id, "shipment_id")
        _check_text(carrier, "carrier", 64)
        _check_text(tracking_number, "tracking_number", 128)
        _check_text(node_id, "node_id", 64)
        return self._move_event(
            ShipmentRecorded,
            Triggers.SHIP,
            lines,
            actor,
            at,
            reason,
            shipment_id,
            carrier,
            tracking_number,
            node_id,
            leaves=node_id,
        )

    def deliver(
        self,
        lines: UnitsByLine | None = None,
        *,
        actor: Actor,
        at: datetime,
        shipment_id: str = "",
        reason: str = "",
    ) -> DeliveryRecorded:
        """Record delivery of shipped units (every shipped unit when ``lines`` is None)."""
        _check_text(shipment_id, "shipment_id", 64)
        return self._move_event(DeliveryRecorded, Triggers.DELIVER, lines, actor, at, reason, shipment_id)

    def record_return(
        self,
        lines: UnitsByLine,
        *,
        actor: Actor,
        at: datetime,
        return_id: str = "",
        reason: str = "",
    ) -> ReturnRecorded:
        """Record delivered units coming back."""
        _check_text(return_id, "return_id", 64)
        return self._move_event(ReturnRecorded, Triggers.RETURN, lines, actor, at, reason, return_id)

    # -- edits --------------------------------------------------------------------------------------------
    def change_line_quantity(
        self, line_id: LineId | str, quantity: int, *, actor: Actor, at: datetime, reason: str = ""
    ) -> LineQuantityChanged:
        """Change how many units a line orders. Its discounts and taxes scale with it."""
        self._check_stamp(actor, at, reason)
        self._require(Triggers.EDIT)
        line = self.line(line_id)
        check_quantity(quantity, "quantity")
        new_qty = line.qty.resize(quantity)
        factor = Decimal(quantity) / Decimal(line.qty.ordered)
        discounts = tuple(attrs.evolve(d, amount=d.amount * factor) for d in line.discounts)
        taxes = tuple(attrs.evolve(t, amount=t.amount * factor) for t in line.taxes)
        new_line = line.with_amounts(new_qty, discounts, taxes)
        new_lines = tuple(new_line if ln.id == line.id else ln for ln in self.lines)
        target = self._resolve(_totals_of(new_lines))
        self.lifecycle.check(self, Triggers.EDIT, target)
        return self._emit(
            LineQuantityChanged,
            target,
            actor,
            at,
            reason,
            line_id=line.id,
            quantity=quantity,
            previous=line.qty.ordered,
            discounts=discounts,
            taxes=taxes,
        )

    def change_shipping_address(
        self, address: Address, *, actor: Actor, at: datetime, reason: str = ""
    ) -> ShippingAddressChanged:
        self._check_stamp(actor, at, reason)
        if not isinstance(address, Address):
            raise InvalidValue("must be an Address", field="address", value=address)
        self.lifecycle.check(self, Triggers.EDIT, self.status)
        return self._emit(
            ShippingAddressChanged,
            self.status,
            actor,
            at,
            reason,
            address=address,
            previous=self.shipping_address,
        )

    # -- internals ----------------------------------------------------------------------------------------
    def _check_stamp(self, actor: object, at: object, reason: object, field: str = "reason") -> None:
        """Who, when and why (``reason`` is checked as ``field``: a hold's message, a release's comment)."""
        if not isinstance(actor, Actor):
            raise InvalidValue("must be an Actor", field="actor", value=actor)
        if type(at) is not datetime or at.tzinfo is None:
            check_aware(at, "at")
        _check_text(reason, field, 1000)

    def _require(self, trigger: Trigger) -> None:
        """Refuse at once a trigger that the current state has no exit for."""
        self.lifecycle.exit(self, trigger)

    def _parse_moves(self, lines: UnitsByLine) -> dict[int, int]:
        """Units to move, by line position, from a caller's mapping of line ids to quantities."""
        if not isinstance(lines, Mapping):
            raise InvalidValue("must map line ids to quantities", field="lines", value=lines)
        problems: list[Problem] = []
        position = {ln.id: i for i, ln in enumerate(self.lines)}
        moves: dict[int, int] = {}
        for raw_id, qty in lines.items():
            if type(raw_id) is LineId:
                lid = raw_id
            else:
                try:
                    lid = LineId.parse(raw_id)
                except InvalidValue as e:
                    problems.append(e.problem().at(f"lines[{str(raw_id)!r}]"))
                    continue
            pos = position.get(lid)
            if pos is None:
                problems.append(
                    Problem(
                        f"lines[{lid.value!r}]",
                        LineNotFound.code,
                        f"order {self.id} has no such line",
                        raw_id,
                    )
                )
                continue
            if type(qty) is not int or qty < 0:
                try:
                    check_quantity(qty, f"lines[{lid.value!r}]", allow_zero=True)
                except InvalidValue as e:
                    problems.append(e.problem())
                continue
            if qty:
                moves[pos] = moves.get(pos, 0) + qty
        if problems:
            raise ValidationFailed(problems, subject="line quantities")
        if not moves:
            raise InvalidValue("must move at least one unit", field="lines", value=dict(lines))
        return moves

    def _moved(
        self, kind: type[OrderEvent], wanted: Mapping[int, int] | None
    ) -> tuple[tuple[OrderLine, ...], tuple[LineQty, ...], LineQuantities]:
        """The lines after moving units as ``kind`` does, in one pass, the units moved per line, and the
        buckets summed over the new lines.

        ``wanted`` gives units by line position; ``None`` moves every unit in the buckets ``kind`` draws
        from. Every problem is reported at once; nothing is changed here."""
        sources, target = _MOVES[kind]
        result: list[OrderLine] = []
        moved: list[LineQty] = []
        qtys: list[LineQuantities] = []
        if wanted is None:
            for line in self.lines:
                qty, n = line.qty.take_all(sources, target)
                if n:
                    line = line.with_qty(qty)
                    moved.append(LineQty(line.id, n))
                result.append(line)
                qtys.append(qty)
        else:
            problems: list[Problem] = []
            for pos, line in enumerate(self.lines):
                if n := wanted.get(pos, 0):
                    try:
                        line = line.with_qty(line.qty.move_by_index(sources, target, n))
                    except InvalidValue as e:
                        problems.append(attrs.evolve(e.problem(), field=f"lines[{line.id.value!r}]"))
                    moved.append(LineQty(line.id, n))
                result.append(line)
                qtys.append(line.qty)
            if problems:
                raise ValidationFailed(problems, subject="line quantities")
        if not moved:
            names = " or ".join(BUCKETS[i] for i in sources)
            raise InvalidValue(
                f"must move at least one unit, and no unit is {names}", field="lines", value=None
            )
        # sums of valid quantities are valid (and an order has at least one line): no need to check again
        totals = tuple.__new__(LineQuantities, map(sum, zip(*qtys, strict=True)))
        return tuple(result), tuple(moved), totals

    def _positions(self, moves: Sequence[LineQty]) -> dict[int, int]:
        """Units by line position, from an event's line quantities (for replay)."""
        position = {ln.id: i for i, ln in enumerate(self.lines)}
        return {position[m.line_id]: m.quantity for m in moves}

    def _resolve(self, totals: LineQuantities) -> State:
        """The status the order would have with lines whose buckets add up to ``totals``."""
        if totals.live == 0:
            return OrderStatus.CANCELLED
        if self.holds:
            return OrderStatus.ON_HOLD
        if not self.accepted:
            return self.status
        return derive_status(totals)

    def _move_event(
        self,
        kind: type[_L],
        trigger: Trigger,
        lines: UnitsByLine | None,
        actor: Actor,
        at: datetime,
        reason: str,
        *extra: object,
        leaves: str = "",
    ) -> _L:
        """Move units of lines as ``kind`` does; ``extra`` are the event's own fields, in order. ``leaves``:
        the node a shipment names, whose allocations must hold the sourced units it takes."""
        self._check_stamp(actor, at, reason)
        t = self.lifecycle.exit(self, trigger)
        new_lines, moved, totals = self._moved(kind, None if lines is None else self._parse_moves(lines))
        if leaves and self.allocations:
            _check_shipped_from(self.allocations, self.lines, new_lines, leaves)
        target = self._resolve(totals)
        if t.guards or target.name not in t.target_names:  # the common case needs no call
            self.lifecycle.admit(self, t, target)
        # positional arguments, in field order: measurably cheaper on this hot path
        event = kind(self.id, self.version + 1, at, actor, target, reason, moved, *extra)
        if self.allocations:
            self.allocations = _follow_allocations(self.allocations, event, self.lines, new_lines)
        self.lines = new_lines  # worked out while checking: no need to apply the event again
        self._settle(event)
        return event

    def _emit(
        self,
        kind: type[_E],
        status: State,
        actor: Actor,
        at: datetime,
        reason: str,
        _lines: tuple[OrderLine, ...] | None = None,
        **payload: Any,
    ) -> _E:
        event = kind(
            order_id=self.id,
            sequence=self.version + 1,
            occurred_at=at,
            actor=actor,
            status=status,
            reason=reason,
            **payload,
        )
        if _lines is not None:  # the new lines were worked out while checking: no need to apply again
            self.lines = _lines
            self._settle(event)
        else:
            self._record(event)
        return event

    def _record(self, ev: OrderEvent) -> None:
        """Apply an event (already checked, or read from history) and append it to the history."""
        apply = _APPLY.get(type(ev))
        if apply is not None:
            apply(self, ev)
        elif isinstance(ev, OrderCreated):
            raise InvalidValue("an order is created only once", field="event", value=ev)
        self._settle(ev)

    def _settle(self, ev: OrderEvent) -> None:
        """What every event does: status, bookkeeping, history."""
        status = ev.status
        if not self.accepted and status.name == _ACCEPTED:
            self.accepted = True
        if status.final:
            self.holds = ()
            self.held_from = None
        if self.placed_at is None and status.name == _PLACED:
            self.placed_at = ev.occurred_at
        self.status = status
        self.updated_at = ev.occurred_at
        self.version = ev.sequence
        self.history.append(ev)


_ORDER_FIELDS = tuple(f.name for f in attrs.fields(Order))
_ACCEPTED, _PLACED = OrderStatus.ACCEPTED.name, OrderStatus.PLACED.name  # states are identified by name


def _check_text(value: object, field: str, max_len: int) -> None:
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidValue(f"must be a string of at most {max_len} characters", field=field, value=value)
    check_text_fault(value, field)


def check_code(code: object, field: str = "code") -> None:
    """InvalidValue naming ``field`` unless ``code`` is a code (of a hold, a shipment...): 1 to 64
    characters, not only spaces, that every store keeps."""
    if not isinstance(code, str) or not code.strip() or len(code) > 64:
        raise InvalidValue("must be a non-empty string of at most 64 characters", field=field, value=code)
    check_text_fault(code, field)


# -- how each event changes the order (used live and by replay) -----------------------------------------------
def _apply_moves(order: Order, ev: OrderEvent) -> None:
    new_lines = order._moved(type(ev), order._positions(ev.lines))[0]  # type: ignore[attr-defined]
    if order.allocations:
        order.allocations = _follow_allocations(order.allocations, ev, order.lines, new_lines)
    order.lines = new_lines


def _apply_sourcing(order: Order, ev: OrderEvent) -> None:
    assert isinstance(ev, SourcingPlanned)
    order.lines = _sourced_lines(order.lines, ev.allocations, ev.waiting)
    order.allocations = (*order.allocations, *ev.allocations)


def _sourced_lines(
    lines: tuple[OrderLine, ...], allocations: Iterable[NodeAllocation], waiting: Iterable[WaitingUnits]
) -> tuple[OrderLine, ...]:
    """Lines after a plan: every open or backordered unit is now allocated or backordered."""
    alloc: dict[LineId, int] = {}
    wait: dict[LineId, int] = {}
    for a in allocations:
        alloc[a.line_id] = alloc.get(a.line_id, 0) + a.quantity
    for w in waiting:
        wait[w.line_id] = wait.get(w.line_id, 0) + w.quantity
    out = []
    for line in lines:
        na, nw = alloc.get(line.id, 0), wait.get(line.id, 0)
        if na or nw:
            q = line.qty
            line = line.with_qty(
                LineQuantities(
                    q.ordered,
                    0,
                    nw,
                    q.allocated + na,
                    q.released,
                    q.shipped,
                    q.delivered,
                    q.returned,
                    q.cancelled,
                )
            )
        out.append(line)
    return tuple(out)


def _reduce_allocations(
    allocations: tuple[NodeAllocation, ...],
    line_id: LineId,
    units: int,
    *,
    node_id: str | None = None,
    newest_first: bool = False,
) -> tuple[NodeAllocation, ...]:
    """``allocations`` with ``units`` of ``line_id`` taken off (at ``node_id`` only, when given)."""
    out = list(allocations)
    positions = range(len(out) - 1, -1, -1) if newest_first else range(len(out))
    for i in positions:
        if not units:
            break
        a = out[i]
        if a.line_id != line_id or (node_id is not None and a.node_id != node_id):
            continue
        take = min(units, a.quantity)
        out[i] = a._replace(quantity=a.quantity - take)
        units -= take
    return tuple(a for a in out if a.quantity)


def _check_shipped_from(
    allocations: tuple[NodeAllocation, ...],
    before: tuple[OrderLine, ...],
    after: tuple[OrderLine, ...],
    node_id: str,
) -> None:
    """QuantityExceeded (on ``node_id``) when a shipment named as leaving ``node_id`` takes more of a line's
    sourced units than are allocated there: they are reserved at other nodes, and shipping them from this
    one would use up those nodes' stock while the parcel left this one. Units allocated by hand (without a
    node) are taken first, as :func:`_follow_allocations` does."""
    for old, new in zip(before, after, strict=True):
        dropped = (old.qty.allocated + old.qty.released) - (new.qty.allocated + new.qty.released)
        if dropped <= 0:
            continue
        tracked = [a for a in allocations if a.line_id == old.id]
        by_hand = old.qty.allocated + old.qty.released - sum(a.quantity for a in tracked)
        here = sum(a.quantity for a in tracked if a.node_id == node_id)
        if dropped - max(by_hand, 0) > here:
            elsewhere = sorted({a.node_id for a in tracked if a.node_id != node_id})
            raise QuantityExceeded(
                f"the shipment takes {dropped} sourced units of line {old.id} but {here} are allocated at"
                f" {node_id} (the others at {', '.join(elsewhere)}); name the node they leave from, or"
                " re-source the order first",
                field="node_id",
                value=node_id,
            )


def _follow_allocations(
    allocations: tuple[NodeAllocation, ...],
    ev: OrderEvent,
    before: tuple[OrderLine, ...],
    after: tuple[OrderLine, ...],
) -> tuple[NodeAllocation, ...]:
    """Node allocations after ``ev`` moved units from ``before`` to ``after``.

    Units withdrawn at a node, or shipped from a named node, come off that node's allocations; otherwise
    tracked allocations are trimmed so that a line never has more of them than allocated and released
    units (a cancellation or a smaller quantity takes the newest first, a shipment from an unnamed node
    the oldest first). Units allocated by hand, without a node, are used up before tracked ones."""
    node = ev.node_id if isinstance(ev, AllocationWithdrawn | ShipmentRecorded) and ev.node_id else None
    newest_first = not isinstance(ev, ShipmentRecorded)
    for old, new in zip(before, after, strict=True):
        dropped = (old.qty.allocated + old.qty.released) - (new.qty.allocated + new.qty.released)
        if dropped <= 0:
            continue
        if node is not None:
            allocations = _reduce_allocations(allocations, old.id, dropped, node_id=node)
        held = new.qty.allocated + new.qty.released
        excess = sum(a.quantity for a in allocations if a.line_id == old.id) - held
        if excess > 0:
            allocations = _reduce_allocations(allocations, old.id, excess, newest_first=newest_first)
    return allocations


def _apply_hold(order: Order, ev: OrderEvent) -> None:
    assert isinstance(ev, HoldApplied)
    if not order.holds:
        order.held_from = order.status
    order.holds = (*order.holds, Hold(ev.code, ev.message, ev.actor, ev.occurred_at))


def _apply_hold_released(order: Order, ev: OrderEvent) -> None:
    assert isinstance(ev, HoldReleased)
    order.holds = tuple(h for h in order.holds if h.code != ev.code)
    if not order.holds:
        order.held_from = None


def _apply_quantity(order: Order, ev: OrderEvent) -> None:
    assert isinstance(ev, LineQuantityChanged)
    line = order.line(ev.line_id)
    new_line = line.with_amounts(line.qty.resize(ev.quantity), ev.discounts, ev.taxes)
    new_lines = tuple(new_line if ln.id == ev.line_id else ln for ln in order.lines)
    if order.allocations:
        order.allocations = _follow_allocations(order.allocations, ev, order.lines, new_lines)
    order.lines = new_lines


def _apply_address(order: Order, ev: OrderEvent) -> None:
    assert isinstance(ev, ShippingAddressChanged)
    order.shipping_address = ev.address


def _apply_nothing(order: Order, ev: OrderEvent) -> None:
    return None


_APPLY: dict[type[OrderEvent], Callable[[Order, Any], None]] = {
    **dict.fromkeys(_MOVES, _apply_moves),
    StatusChanged: _apply_nothing,
    RulesEvaluated: _apply_nothing,
    HoldApplied: _apply_hold,
    HoldReleased: _apply_hold_released,
    LineQuantityChanged: _apply_quantity,
    ShippingAddressChanged: _apply_address,
    SourcingPlanned: _apply_sourcing,
}


def _describe(ev: OrderEvent) -> str:
    if isinstance(ev, OrderCreated):
        return f"{len(ev.lines)} line(s) via {ev.channel}"
    if isinstance(ev, StatusChanged):
        return f"{ev.trigger} from {ev.previous}" + (f" [{ev.code}]" if ev.code else "")
    if isinstance(ev, HoldApplied | HoldReleased):
        return ev.code
    if isinstance(ev, LineQuantityChanged):
        return f"line {ev.line_id} {ev.previous} -> {ev.quantity}"
    if isinstance(ev, ShippingAddressChanged):
        return f"to {ev.address.city}, {ev.address.country}"
    if isinstance(ev, SourcingPlanned):
        nodes: dict[str, list[str]] = {}
        for a in ev.allocations:
            nodes.setdefault(a.node_id, []).append(f"{a.line_id}x{a.quantity}")
        parts = [f"{n}: {', '.join(items)}" for n, items in nodes.items()]
        if ev.waiting:
            parts.append("waiting " + ", ".join(f"{w.line_id}x{w.quantity}" for w in ev.waiting))
        return "; ".join(parts) + f" ({ev.strategy}, {ev.cost})"
    if isinstance(ev, RulesEvaluated):
        fired = [v.rule_id for v in ev.verdicts if v.matched]
        return f"{ev.rule_set} v{ev.rule_set_version}: {ev.decision}" + (
            f" ({', '.join(fired)})" if fired else ""
        )
    if isinstance(ev, AllocationWithdrawn):
        return f"{', '.join(f'{m.line_id}x{m.quantity}' for m in ev.lines)} from {ev.node_id} [{ev.code}]"
    lines = getattr(ev, "lines", ())
    text = ", ".join(f"{m.line_id}x{m.quantity}" for m in lines)
    if isinstance(ev, ShipmentRecorded):
        via = " ".join(x for x in (ev.carrier, ev.tracking_number) if x)
        text += f" in {ev.shipment_id}" + (f" ({via})" if via else "")
    return text
