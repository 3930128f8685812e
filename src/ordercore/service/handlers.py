"""Command handlers: load the order, call the domain, commit. No business rules live here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import attrs
import cattrs

from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    IdempotencyConflict,
    InvalidValue,
    SourcingFailed,
)
from ordercore.events import OrderCreated, OrderEvent
from ordercore.inventory import FulfilmentNetwork
from ordercore.lifecycle import Lifecycle, Triggers
from ordercore.lines import OrderLine
from ordercore.order import Order
from ordercore.ports import (
    AddressValidator,
    Clock,
    CrmGateway,
    CustomerDirectory,
    ErpGateway,
    FraudScorer,
    Geocoder,
    IdempotencyRecord,
    IdGenerator,
    Notifier,
    PaymentGateway,
    PaymentRecords,
    ProductCatalog,
    RecentOrders,
    TaxCalculator,
    TmsGateway,
    UnitOfWork,
    WmsGateway,
)
from ordercore.rules.model import RuleSet
from ordercore.serialization import make_converter
from ordercore.service import commands as c
from ordercore.service.rules import apply_rules, rule_inputs
from ordercore.service.sourcing import (
    capacity_left,
    default_policy,
    destination_of,
    load_positions,
    needs_sourcing,
    offline_nodes,
    record_plan,
    resource_if_cheaper,
    source_order,
    sourcing_request,
    stock_view,
    sync_reservations,
    withdrawable,
)
from ordercore.sourcing import batch
from ordercore.sourcing.batch import WaveOrder
from ordercore.sourcing.model import SourcingPolicy, SourcingRequest, SourcingStrategy
from ordercore.storage import check_idempotency_key
from ordercore.values import LineId, OrderId

__all__ = ["COMMAND_HANDLERS", "CommandResult", "Handler", "Services", "request_fingerprint"]


@attrs.frozen
class Services:
    """What handlers may use besides the unit of work. Integration ports are optional."""

    clock: Clock
    ids: IdGenerator
    lifecycle: Lifecycle
    payment: PaymentGateway | None = None
    erp: ErpGateway | None = None
    wms: WmsGateway | None = None
    tms: TmsGateway | None = None
    crm: CrmGateway | None = None
    tax: TaxCalculator | None = None
    notifier: Notifier | None = None
    network: FulfilmentNetwork | None = None
    strategies: Mapping[str, SourcingStrategy] = attrs.field(factory=dict)
    default_strategy: str = "cost_optimal"
    sourcing_policy: Callable[[Order], SourcingPolicy] = default_policy
    geocoder: Geocoder | None = None
    rules: RuleSet | None = None
    customers: CustomerDirectory | None = None
    catalog: ProductCatalog | None = None
    fraud: FraudScorer | None = None
    payments: PaymentRecords | None = None
    recent_orders: RecentOrders | None = None
    address_validator: AddressValidator | None = None

    def strategy(self, name: str = "") -> SourcingStrategy:
        """The strategy called ``name`` (the default one when empty)."""
        if not isinstance(name, str):
            raise InvalidValue("must be the name of a sourcing strategy", field="strategy", value=name)
        chosen = name or self.default_strategy
        try:
            return self.strategies[chosen]
        except KeyError:
            raise InvalidValue(
                f"no sourcing strategy {chosen!r}; known: {sorted(self.strategies)}",
                field="strategy",
                value=chosen,
            ) from None

    def fulfilment_network(self) -> FulfilmentNetwork:
        if self.network is None:
            raise SourcingFailed(
                "no fulfilment network is configured", reasons=["pass network=... to bootstrap"]
            )
        return self.network


@attrs.frozen
class CommandResult:
    """The order a command touched, its version afterwards and the events the command recorded."""

    order_id: Any
    version: int
    events: tuple[OrderEvent, ...]

    @property
    def changed(self) -> bool:
        return bool(self.events)


C = TypeVar("C", bound=c.Command)
Handler = Callable[[Any, UnitOfWork, Services], CommandResult]


def place_order(cmd: c.PlaceOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
    key, fingerprint = cmd.idempotency_key, ""
    if key is not None:
        check_idempotency_key(key, "idempotency_key")
        try:
            fingerprint = request_fingerprint(cmd)
        except InvalidValue:
            # a request that cannot be hashed is not a valid order: say what is wrong with it, as without
            # a key (ValidationFailed); the fingerprint's own error when the order finds nothing wrong
            _new_order(cmd, svc, cmd.order_id or _PROBE_ID, svc.clock.now())
            raise
        record = uow.idempotency.get(key)
        if record is not None:
            if record.fingerprint != fingerprint:
                raise IdempotencyConflict(key, existing_order_id=record.order_id)
            placed = uow.orders.get(record.order_id)
            return CommandResult(placed.id, placed.version, ())
    if cmd.external_ref is not None:
        existing = uow.orders.find_by_external_ref(cmd.channel, cmd.external_ref)
        if existing is not None:
            if not _same_order(existing, cmd):
                raise DuplicateOrder(
                    f"{cmd.channel} already sent {cmd.external_ref!r} as order {existing.id} with other content",
                    existing_order_id=existing.id,
                )
            if key is not None:  # the key now names that order too
                uow.idempotency.add(IdempotencyRecord(key, existing.id, fingerprint, svc.clock.now()))
                uow.commit()
            return CommandResult(existing.id, existing.version, ())
    at = svc.clock.now()
    order = _new_order(cmd, svc, cmd.order_id or svc.ids.new_order_id(), at)
    if not cmd.draft:
        order.place(actor=cmd.actor, at=at, reason=cmd.reason)
        if svc.rules is not None:
            apply_rules(order, svc.rules, rule_inputs(uow, svc, at), reason="placed")
    events = tuple(order.new_events())
    if key is not None:
        uow.idempotency.add(IdempotencyRecord(key, order.id, fingerprint, at))
    try:
        uow.orders.add(order)
        uow.commit()
    except DuplicateOrder as e:
        if cmd.external_ref is None or e.existing_order_id == order.id:
            raise  # the order id is taken: running the command again would not change that
        # another delivery with this channel and reference was stored since the lookup above: a lost race,
        # run again (by the bus) on a fresh unit, where the lookup finds the winner's order and compares
        raise ConcurrencyConflict(f"{cmd.channel} order {cmd.external_ref!r}", 0, 1) from e
    return CommandResult(order.id, order.version, events)


#: the id an order is checked under when it gets none (see place_order)
_PROBE_ID = OrderId("O-000000")


def _new_order(cmd: c.PlaceOrder, svc: Services, order_id: OrderId, at: datetime) -> Order:
    """The draft order ``cmd`` asks for (ValidationFailed with every problem of its input)."""
    return Order.create(
        order_id=order_id,
        channel=cmd.channel,
        customer=cmd.customer,
        currency=cmd.currency,
        shipping_address=cmd.shipping_address,
        lines=cmd.lines,
        actor=cmd.actor,
        at=at,
        billing_address=cmd.billing_address,
        external_ref=cmd.external_ref,
        discounts=cmd.discounts,
        shipping_charges=cmd.shipping_charges,
        shipping_taxes=cmd.shipping_taxes,
        service_level=cmd.service_level,
        requested_delivery_date=cmd.requested_delivery_date,
        attributes=cmd.attributes,
        lifecycle=svc.lifecycle,
        reason=cmd.reason,
    )


#: fields of PlaceOrder that say who asks and why, or name the request, rather than what it asks for
_NOT_PAYLOAD = frozenset({"actor", "reason", "idempotency_key"})


@cache
def _fingerprint_converter() -> cattrs.Converter:
    return make_converter()


def request_fingerprint(cmd: c.PlaceOrder) -> str:
    """A stable hash of what ``cmd`` asks for: SHA-256 of the canonical JSON of its fields, without
    ``actor``, ``reason`` and the key itself, and without fields left at their default (so that a field
    added to PlaceOrder later does not change the fingerprints of requests already recorded)."""
    conv = _fingerprint_converter()
    payload: dict[str, Any] = {}
    for field in attrs.fields(c.PlaceOrder):
        if field.name in _NOT_PAYLOAD:
            continue
        value = getattr(cmd, field.name)
        default: Any = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING and value == default:
            continue
        payload[field.name] = value
    try:
        canonical = _canonical({name: conv.unstructure(value) for name, value in payload.items()})
    except Exception:  # find the field that cannot be hashed, and say so
        for name, value in payload.items():
            try:
                _canonical({name: conv.unstructure(value)})
            except Exception as e:
                raise InvalidValue(
                    f"cannot be recorded with the idempotency key ({type(e).__name__}: {e})",
                    field=name,
                    value=value,
                ) from e
        raise
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _same_order(order: Order, cmd: c.PlaceOrder) -> bool:
    """Whether ``cmd`` asks for exactly the order that was created (a retry of the same request)."""
    created = order.history[0]
    assert isinstance(created, OrderCreated)
    lines = tuple(OrderLine.from_new(n, n.line_id or LineId(str(i + 1))) for i, n in enumerate(cmd.lines))
    return (
        created.customer == cmd.customer
        and created.currency == cmd.currency
        and created.shipping_address == cmd.shipping_address
        and created.billing_address == cmd.billing_address
        and created.lines == lines
        and created.discounts == cmd.discounts
        and created.shipping_charges == cmd.shipping_charges
        and created.shipping_taxes == cmd.shipping_taxes
        and created.service_level == cmd.service_level
        and created.requested_delivery_date == cmd.requested_delivery_date
        and created.attributes == cmd.attributes
        and (cmd.order_id is None or cmd.order_id == order.id)
    )


def _on_order(
    change: Callable[[Order, C, datetime], object],
    *,
    ships: bool = False,
    resource: bool = False,
    reevaluate: str = "",
) -> Callable[[C, UnitOfWork, Services], CommandResult]:
    """A handler that loads the order, applies ``change`` and commits if anything happened. Stock
    reservations the order no longer needs are released (consumed, when ``ships``) in the same commit;
    with ``resource``, the order's unreleased units are sourced again when that became cheaper. With
    ``reevaluate`` (the reason), an order not accepted yet goes through the rule set again afterwards."""

    def handle(cmd: C, uow: UnitOfWork, svc: Services) -> CommandResult:
        assert isinstance(cmd, c.OrderCommand)
        order = uow.orders.get(cmd.order_id)
        if cmd.expected_version is not None and cmd.expected_version != order.version:
            raise ConcurrencyConflict(order.id, cmd.expected_version, order.version)
        before, allocations = order.version, order.allocations
        at = svc.clock.now()
        change(order, cmd, at)
        events = tuple(order.history[before:])
        if events:
            if allocations and order.allocations != allocations:
                sync_reservations(uow, order, allocations, at=at, shipped=ships, reason=f"order {order.id}")
            if resource and order.allocations and svc.network is not None:
                _resource_if_cheaper(order, cmd, uow, svc, at)
                events = tuple(order.history[before:])
            if reevaluate and svc.rules is not None and not order.accepted:
                apply_rules(order, svc.rules, rule_inputs(uow, svc, at), reason=reevaluate)
                events = tuple(order.history[before:])
            uow.orders.save(order)
            uow.commit()
        return CommandResult(order.id, order.version, events)

    handle.__name__ = getattr(change, "__name__", "handle")
    return handle


def _resource_if_cheaper(
    order: Order, cmd: c.OrderCommand, uow: UnitOfWork, svc: Services, at: datetime
) -> None:
    """Re-source after ``cmd`` when cheaper; an order that cannot be planned now stays as it is."""
    resource_if_cheaper(
        order,
        uow,
        network=svc.fulfilment_network(),
        strategy=svc.strategy(),
        policy=svc.sourcing_policy(order),
        geocoder=svc.geocoder,
        actor=cmd.actor,
        at=at,
        reason=f"re-sourced after: {cmd.reason}" if cmd.reason else "re-sourced",
    )


def _accept(o: Order, cmd: c.AcceptOrder, at: datetime) -> object:
    return o.accept(actor=cmd.actor, at=at, reason=cmd.reason)


def _reject(o: Order, cmd: c.RejectOrder, at: datetime) -> object:
    return o.reject(actor=cmd.actor, at=at, reason=cmd.reason, code=cmd.code)


def _complete(o: Order, cmd: c.CompleteOrder, at: datetime) -> object:
    return o.complete(actor=cmd.actor, at=at, reason=cmd.reason)


def _fire(o: Order, cmd: c.FireTrigger, at: datetime) -> object:
    return o.fire(cmd.trigger, actor=cmd.actor, at=at, reason=cmd.reason, code=cmd.code)


def _hold(o: Order, cmd: c.HoldOrder, at: datetime) -> object:
    return o.hold(cmd.code, actor=cmd.actor, at=at, message=cmd.message or cmd.reason)


def _release_hold(o: Order, cmd: c.ReleaseHold, at: datetime) -> object:
    return o.release_hold(cmd.code, actor=cmd.actor, at=at, comment=cmd.comment or cmd.reason)


def _reevaluate(cmd: c.ReevaluateOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
    """Run the rule set again on an order (after a payment was authorised, stock arrived, a customer's
    credit changed...). Without a rule set, or for an order already accepted, nothing happens."""
    order = uow.orders.get(cmd.order_id)
    if cmd.expected_version is not None and cmd.expected_version != order.version:
        raise ConcurrencyConflict(order.id, cmd.expected_version, order.version)
    if svc.rules is None or order.accepted or order.status.final:
        return CommandResult(order.id, order.version, ())
    before = order.version
    apply_rules(
        order, svc.rules, rule_inputs(uow, svc, svc.clock.now()), reason=cmd.reason or "re-evaluation"
    )
    events = tuple(order.history[before:])
    uow.orders.save(order)
    uow.commit()
    return CommandResult(order.id, order.version, events)


def _cancel(o: Order, cmd: c.CancelOrder, at: datetime) -> object:
    return o.cancel(actor=cmd.actor, at=at, reason=cmd.reason)


def _cancel_lines(o: Order, cmd: c.CancelLines, at: datetime) -> object:
    return o.cancel_lines(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _change_quantity(o: Order, cmd: c.ChangeLineQuantity, at: datetime) -> object:
    return o.change_line_quantity(cmd.line_id, cmd.quantity, actor=cmd.actor, at=at, reason=cmd.reason)


def _change_address(o: Order, cmd: c.ChangeShippingAddress, at: datetime) -> object:
    return o.change_shipping_address(cmd.address, actor=cmd.actor, at=at, reason=cmd.reason)


def _allocate(o: Order, cmd: c.AllocateLines, at: datetime) -> object:
    return o.allocate(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _backorder(o: Order, cmd: c.BackorderLines, at: datetime) -> object:
    return o.backorder(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _release(o: Order, cmd: c.ReleaseToFulfilment, at: datetime) -> object:
    return o.release(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _ship(o: Order, cmd: c.RecordShipment, at: datetime) -> object:
    return o.ship(
        cmd.lines,
        shipment_id=cmd.shipment_id,
        actor=cmd.actor,
        at=at,
        carrier=cmd.carrier,
        tracking_number=cmd.tracking_number,
        node_id=cmd.node_id,
        reason=cmd.reason,
    )


def _deliver(o: Order, cmd: c.RecordDelivery, at: datetime) -> object:
    return o.deliver(cmd.lines, actor=cmd.actor, at=at, shipment_id=cmd.shipment_id, reason=cmd.reason)


def _return(o: Order, cmd: c.RecordReturn, at: datetime) -> object:
    return o.record_return(cmd.lines, actor=cmd.actor, at=at, return_id=cmd.return_id, reason=cmd.reason)


def _sourcing_handler(
    take_back: Callable[[Order, C, datetime], tuple[str | None, bool]] | None,
) -> Callable[[C, UnitOfWork, Services], CommandResult]:
    """A handler that optionally takes units back from nodes first (``take_back`` withdraws them and says
    which node to avoid and whether to source again), then sources what is open or backordered."""

    def handle(cmd: C, uow: UnitOfWork, svc: Services) -> CommandResult:
        assert isinstance(cmd, c.SourceOrder | c.ResourceOrder | c.ReportShortPick)
        order = uow.orders.get(cmd.order_id)
        if cmd.expected_version is not None and cmd.expected_version != order.version:
            raise ConcurrencyConflict(order.id, cmd.expected_version, order.version)
        before, allocations = order.version, order.allocations
        at = svc.clock.now()
        avoid, again = (None, True) if take_back is None else take_back(order, cmd, at)
        if allocations != order.allocations:
            sync_reservations(uow, order, allocations, at=at, reason=cmd.reason or f"order {order.id}")
        if (
            again
            and take_back is not None
            and order.lifecycle.transition(order.status, Triggers.SOURCE) is None
        ):
            again = False  # taken back from an order that cannot be sourced now (on hold): sourced later
        if again:
            policy = getattr(cmd, "policy", None) or svc.sourcing_policy(order)
            if avoid is not None and avoid != policy.pickup_node:
                policy = attrs.evolve(policy, excluded_nodes=policy.excluded_nodes | {avoid})
            source_order(
                order,
                uow,
                network=svc.fulfilment_network(),
                strategy=svc.strategy(getattr(cmd, "strategy", "")),
                policy=policy,
                geocoder=svc.geocoder,
                actor=cmd.actor,
                at=at,
                reason=cmd.reason,
            )
        events = tuple(order.history[before:])
        if events:
            uow.orders.save(order)
            uow.commit()
        return CommandResult(order.id, order.version, events)

    return handle


def _take_back_for_resourcing(o: Order, cmd: c.ResourceOrder, at: datetime) -> tuple[str | None, bool]:
    code = "resourcing" if cmd.node_id is None else "node_offline"
    for node_id, units in withdrawable(o, cmd.node_id).items():
        o.withdraw_allocation(node_id, units, code=code, actor=cmd.actor, at=at, reason=cmd.reason)
    return None, True


def _take_back_short_pick(o: Order, cmd: c.ReportShortPick, at: datetime) -> tuple[str | None, bool]:
    o.withdraw_allocation(
        cmd.node_id, cmd.lines, code="short_pick", actor=cmd.actor, at=at, reason=cmd.reason
    )
    return cmd.node_id, cmd.resource


def source_wave(cmd: c.SourceWave, uow: UnitOfWork, svc: Services) -> CommandResult:
    """Load the wave's orders, plan them jointly against one view of the stock, reserve and record every
    plan, and commit it all at once."""
    at = svc.clock.now()
    network = svc.fulfilment_network()
    strategy = svc.strategy(cmd.strategy)
    orders: list[Order] = []
    wave: list[WaveOrder] = []
    requests: dict[str, SourcingRequest] = {}
    for order_id in dict.fromkeys(cmd.order_ids):
        order = uow.orders.get(order_id)
        if not needs_sourcing(order) or order.lifecycle.transition(order.status, Triggers.SOURCE) is None:
            continue
        request = sourcing_request(order, destination_of(order, svc.geocoder), svc.sourcing_policy(order), at)
        orders.append(order)
        requests[order.id.value] = request
        wave.append(WaveOrder(request, cmd.priorities.get(order.id, 0), order.placed_at))
    if not wave:
        return CommandResult(None, 0, ())
    positions = load_positions(uow, requests.values())
    stock = stock_view(network, positions.values(), at, capacity_left(uow, network, at), offline_nodes(uow))
    run = batch.source_wave if cmd.joint else batch.source_one_by_one
    result = run(wave, stock, strategy, cmd.fairness)
    events: list[OrderEvent] = []
    for order in orders:
        plan = result.by_ref.get(order.id.value)
        if plan is None:  # the strategy could not source it (see result.failed): it stays as it was
            continue
        reason = cmd.reason or f"wave of {len(wave)} orders ({cmd.fairness.value})"
        events.append(
            record_plan(
                order,
                plan,
                requests[order.id.value],
                positions,
                uow,
                network=network,
                actor=cmd.actor,
                at=at,
                reason=reason,
            )
        )
        uow.orders.save(order)
    if events:
        uow.commit()
    return CommandResult(None, 0, tuple(events))


#: The built-in command handlers, by command type.
COMMAND_HANDLERS: dict[type[c.Command], Handler] = {
    c.PlaceOrder: place_order,
    c.AcceptOrder: _on_order(_accept),
    c.RejectOrder: _on_order(_reject),
    c.CompleteOrder: _on_order(_complete),
    c.FireTrigger: _on_order(_fire),
    c.HoldOrder: _on_order(_hold),
    c.ReleaseHold: _on_order(_release_hold, reevaluate="hold released"),
    c.ReevaluateOrder: _reevaluate,
    c.CancelOrder: _on_order(_cancel),
    c.CancelLines: _on_order(_cancel_lines, resource=True, reevaluate="lines cancelled"),
    c.ChangeLineQuantity: _on_order(_change_quantity, reevaluate="quantity changed"),
    c.ChangeShippingAddress: _on_order(_change_address, reevaluate="shipping address changed"),
    c.AllocateLines: _on_order(_allocate),
    c.BackorderLines: _on_order(_backorder),
    c.ReleaseToFulfilment: _on_order(_release),
    c.RecordShipment: _on_order(_ship, ships=True),
    c.RecordDelivery: _on_order(_deliver),
    c.RecordReturn: _on_order(_return),
    c.SourceOrder: _sourcing_handler(None),
    c.SourceWave: source_wave,
    c.ResourceOrder: _sourcing_handler(_take_back_for_resourcing),
    c.ReportShortPick: _sourcing_handler(_take_back_short_pick),
}
