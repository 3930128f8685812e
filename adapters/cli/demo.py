"""The scripted demo: a few orders from different channels driven through their lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TextIO

import ordercore as oc
from ordercore.inventory import Capability, FulfilmentNode, NodeKind, ShippingCost, Supply
from ordercore.ports import Store
from ordercore.service.commands import ExpectSupply, ReceiveStock, ReportShortPick, SourceOrder

__all__ = ["run_demo"]

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _eur(amount: str) -> oc.Money:
    return oc.Money.of(amount, "EUR")


def run_demo(store: str, *, out: TextIO) -> dict[str, oc.Order]:
    """Run the demo on ``store`` and print each order's timeline; returns the final orders by name."""
    clock = oc.ManualClock(START, tick=timedelta(minutes=7))
    published: list[oc.OrderEvent] = []

    class ListPublisher:
        def publish(self, events: Sequence[oc.OrderEvent]) -> None:
            published.extend(events)

    app = oc.bootstrap(
        store, clock=clock, ids=oc.SequentialIds("DEMO"), publisher=ListPublisher(), network=_network()
    )
    notified: list[str] = []
    app.subscribe(
        oc.ShipmentRecorded, lambda ev: notified.append(f"shipment {ev.shipment_id} of {ev.order_id}")
    )

    berlin = oc.Address(
        country="DE",
        postal_code="10115",
        city="Berlin",
        line1="Invalidenstr. 1",
        name="Ada Muster",
        coordinates=oc.GeoPoint(52.53, 13.38),
    )
    lyon = oc.Address(
        country="FR", postal_code="69002", city="Lyon", line1="1 Rue de la République", company="Bistro SARL"
    )
    vat = Decimal("0.19")
    alice = oc.Actor.user("alice")
    wms = oc.Actor.system("wms")
    carrier = oc.Actor.system("carrier")
    orders: dict[str, oc.Order] = {}

    with app:
        # 1. A web shop order: allocated, released, shipped in two parcels, delivered, completed.
        web = app.handle(
            oc.PlaceOrder(
                channel=oc.Channel("web"),
                external_ref="WEB-1001",
                actor=oc.Actor.channel("web"),
                customer=oc.CustomerRef(oc.CustomerId("C-ADA"), segment="retail", email="ada@example.com"),
                currency="EUR",
                shipping_address=berlin,
                lines=[
                    oc.NewLine(
                        oc.Sku("MUG-BLUE"), 2, _eur("12.50"), taxes=[oc.TaxLine("VAT", vat, _eur("4.75"))]
                    ),
                    oc.NewLine(
                        oc.Sku("TEA-GREEN"),
                        3,
                        _eur("6.00"),
                        discounts=[oc.Adjustment("BUNDLE", _eur("3.00"))],
                        taxes=[oc.TaxLine("VAT", vat, _eur("2.85"))],
                    ),
                ],
                shipping_charges=[oc.Adjustment("standard", _eur("4.95"))],
                requested_delivery_date=date(2026, 11, 6),
            )
        ).order_id
        app.handle(oc.AcceptOrder(order_id=web, actor=oc.Actor.system("rules"), reason="all checks passed"))
        app.handle(oc.AllocateLines(order_id=web, actor=oc.Actor.system("sourcing"), reason="from WH-BERLIN"))
        app.handle(oc.ReleaseToFulfilment(order_id=web, actor=oc.Actor.system("sourcing")))
        app.handle(
            oc.RecordShipment(
                order_id=web,
                shipment_id="SHP-1",
                lines={"1": 2, "2": 1},
                actor=wms,
                carrier="DHL",
                tracking_number="00340434161094012345",
            )
        )
        app.handle(
            oc.RecordShipment(
                order_id=web,
                shipment_id="SHP-2",
                actor=wms,
                carrier="DHL",
                tracking_number="00340434161094012346",
                reason="second parcel",
            )
        )
        app.handle(
            oc.RecordDelivery(order_id=web, shipment_id="SHP-1", lines={"1": 2, "2": 1}, actor=carrier)
        )
        app.handle(oc.RecordDelivery(order_id=web, shipment_id="SHP-2", actor=carrier))
        app.handle(oc.CompleteOrder(order_id=web, actor=oc.Actor.system("closer")))
        orders["web"] = app.get_order(web)

        # 2. An EDI order from a business customer: held for credit review, released, one line short,
        #    partially cancelled, shipped, delivered, one unit returned.
        edi_message = oc.PlaceOrder(
            channel=oc.Channel("edi"),
            external_ref="ORDERS-77812",
            actor=oc.Actor.channel("edi"),
            customer=oc.CustomerRef(oc.CustomerId("B-BISTRO"), segment="b2b"),
            currency="EUR",
            shipping_address=lyon,
            billing_address=lyon,
            service_level="freight",
            lines=[
                oc.NewLine(oc.Sku("PLATE-26"), 24, _eur("4.20")),
                oc.NewLine(oc.Sku("BOWL-14"), 12, _eur("3.10")),
            ],
            discounts=[oc.Adjustment("B2B-5", _eur("6.90"), "5% trade discount")],
        )
        edi = app.handle(edi_message).order_id
        # the same EDI message arrives twice: the retry returns the same order, nothing is duplicated
        retry = app.handle(edi_message)
        assert retry.order_id == edi and not retry.changed
        app.handle(
            oc.HoldOrder(
                order_id=edi,
                code="CREDIT_LIMIT",
                actor=oc.Actor.system("rules"),
                message="open balance plus this order exceeds the credit limit",
            )
        )
        app.handle(
            oc.ReleaseHold(
                order_id=edi, code="CREDIT_LIMIT", actor=alice, comment="customer paid the overdue invoice"
            )
        )
        app.handle(oc.AcceptOrder(order_id=edi, actor=alice))
        app.handle(oc.AllocateLines(order_id=edi, lines={"1": 24, "2": 8}, actor=oc.Actor.system("sourcing")))
        app.handle(oc.BackorderLines(order_id=edi, lines={"2": 4}, actor=oc.Actor.system("sourcing")))
        app.handle(
            oc.CancelLines(
                order_id=edi, lines={"2": 4}, actor=alice, reason="customer declined the backorder"
            )
        )
        app.handle(oc.RecordShipment(order_id=edi, shipment_id="SHP-3", actor=wms, carrier="GEODIS"))
        app.handle(oc.RecordDelivery(order_id=edi, actor=carrier))
        app.handle(
            oc.RecordReturn(
                order_id=edi, lines={"1": 1}, return_id="RMA-1", actor=alice, reason="arrived broken"
            )
        )
        orders["edi"] = app.get_order(edi)

        # 3. A marketplace order rejected, and a point-of-sale order cancelled after an address edit.
        market = app.handle(
            oc.PlaceOrder(
                channel=oc.Channel("marketplace-de"),
                external_ref="MP-553",
                actor=oc.Actor.channel("marketplace-de"),
                customer=oc.CustomerRef(oc.CustomerId("C-ANON-9")),
                currency="EUR",
                shipping_address=berlin,
                lines=[oc.NewLine(oc.Sku("KNIFE-SET"), 1, _eur("89.00"))],
            )
        ).order_id
        app.handle(
            oc.RejectOrder(
                order_id=market,
                code="RESTRICTED_ITEM",
                actor=oc.Actor.system("rules"),
                reason="knives cannot be sold on this marketplace",
            )
        )
        orders["marketplace"] = app.get_order(market)

        pos = app.handle(
            oc.PlaceOrder(
                channel=oc.Channel("pos-berlin-1"),
                actor=oc.Actor.channel("pos-berlin-1"),
                customer=oc.CustomerRef(oc.CustomerId("C-ADA")),
                currency="EUR",
                shipping_address=berlin,
                lines=[oc.NewLine(oc.Sku("LAMP-OAK"), 1, _eur("149.00"))],
            )
        ).order_id
        app.handle(oc.AcceptOrder(order_id=pos, actor=alice))
        app.handle(
            oc.ChangeShippingAddress(order_id=pos, address=lyon, actor=alice, reason="ship to the bistro")
        )
        app.handle(oc.ChangeLineQuantity(order_id=pos, line_id=oc.LineId("1"), quantity=2, actor=alice))
        app.handle(oc.CancelOrder(order_id=pos, actor=alice, reason="customer changed their mind"))
        orders["pos"] = app.get_order(pos)

        for name, order in orders.items():
            t = order.totals()
            out.write(f"\n== {order.id} ({name}, {order.channel}) -> {order.status}\n")
            for line in order.timeline():
                out.write(f"   {line}\n")
            out.write(
                f"   totals: subtotal {t.subtotal}, discounts {t.discount_total}, tax {t.tax_total}, "
                f"shipping {t.shipping_total}, grand total {t.grand_total}\n"
            )
            assert oc.Order.replay(order.history) == order

        orders["sourced"] = _sourcing(app, berlin, out)
        orders["ruled"] = _rules(app.store, clock, berlin, out)

        out.write("\n== what ordercore refuses, and why\n")
        try:
            app.handle(oc.RecordShipment(order_id=pos, shipment_id="SHP-X", actor=wms))
        except oc.IllegalTransition as e:
            out.write(f"   [{e.code}] {e}\n")
        try:
            app.handle(
                oc.PlaceOrder(
                    channel=oc.Channel("web"),
                    customer=oc.CustomerRef(oc.CustomerId("C-ADA")),
                    currency="EUR",
                    shipping_address=berlin,
                    lines=[
                        oc.NewLine(oc.Sku("MUG-BLUE"), 1, oc.Money.of("10.00", "USD")),
                        oc.NewLine(
                            oc.Sku("TEA-GREEN"),
                            1,
                            _eur("1.00"),
                            discounts=[oc.Adjustment("TOO-MUCH", _eur("5.00"))],
                        ),
                    ],
                )
            )
        except oc.ValidationFailed as e:
            out.write(f"   [{e.code}]\n")
            for p in e.problems:
                out.write(f"     - {p}\n")
        out.write(
            f"\n{len(published)} events published through the outbox; "
            f"{len(notified)} shipment notifications sent.\n"
        )
    return orders


DEMO_RULES = """
name = "demo-shop"
version = "3"

[[rules]]
id = "embargo"
builtin = "embargoed_destination"
params = { countries = ["CU", "IR", "KP", "SY"] }

[[rules]]
id = "big-first-order"
description = "Large first orders are checked by a person"
stage = "fraud"
when = "order.total > 250 EUR and customer.is_new"
outcome = "hold"
reason = "review_large_new_customer"
message = "first order of {order.total} from {customer.id}"

[[rules]]
id = "credit"
builtin = "credit_limit"

[[rules]]
id = "stock"
builtin = "stock_available"
"""


class _DemoErp:
    """Open balances as an ERP would give them."""

    def open_balance(self, customer_id: oc.CustomerId, currency: str) -> oc.Money:
        return oc.Money.of("1200.00" if str(customer_id) == "C-BISTRO" else "0", currency)

    def post_sales_order(self, order: oc.Order) -> str:
        return f"SO-{order.id}"


def _rules(store: Store, clock: oc.ManualClock, berlin: oc.Address, out: TextIO) -> oc.Order:
    """An order held by a rule, the explanation, and its release by a person: a second application on
    the same store, with a rule set (the caller closes the store)."""
    from ordercore.ports import CustomerProfile
    from ordercore.rules import explain, load_rules
    from ordercore_adapters.memory.master_data import InMemoryCustomerDirectory

    customers = InMemoryCustomerDirectory(
        [
            CustomerProfile(oc.CustomerId("C-ADA"), orders_placed=4),
            CustomerProfile(oc.CustomerId("C-BISTRO"), orders_placed=30, credit_limit=_eur("1500.00")),
        ]
    )
    app = oc.bootstrap(
        store,
        clock=clock,
        ids=oc.SequentialIds("RULED"),
        network=_network(),
        rules=load_rules(DEMO_RULES),
        customers=customers,
        erp=_DemoErp(),
    )
    out.write("\n== rules: demo-shop v3 (embargo, big first orders, credit limit, stock)\n")
    order_id = app.handle(
        oc.PlaceOrder(
            channel=oc.Channel("web"),
            actor=oc.Actor.channel("web"),
            customer=oc.CustomerRef(oc.CustomerId("C-NEWBIE")),
            currency="EUR",
            shipping_address=berlin,
            lines=[oc.NewLine(oc.Sku("LAMP-OAK"), 2, _eur("149.00"))],
        )
    ).order_id
    order = app.get_order(order_id)
    decision = next(e for e in reversed(order.history) if isinstance(e, oc.RulesEvaluated))
    out.write(f"   {order_id} -> {order.status}, holds: {', '.join(h.code for h in order.holds)}\n")
    for line in explain(decision).splitlines():
        out.write(f"   {line}\n")
    app.handle(
        oc.ReleaseHold(
            order_id=order_id,
            code="review_large_new_customer",
            comment="called the customer: genuine order",
            actor=oc.Actor.user("alice"),
        )
    )
    order = app.get_order(order_id)
    out.write(f"   released by alice -> {order.status}\n")
    for line in order.timeline():
        out.write(f"   {line}\n")
    assert order.status is oc.OrderStatus.ACCEPTED

    bistro = app.handle(
        oc.PlaceOrder(
            channel=oc.Channel("edi"),
            actor=oc.Actor.channel("edi"),
            customer=oc.CustomerRef(oc.CustomerId("C-BISTRO"), segment="b2b"),
            currency="EUR",
            shipping_address=berlin,
            lines=[oc.NewLine(oc.Sku("LAMP-OAK"), 3, _eur("149.00"))],
        )
    ).order_id
    held = app.get_order(bistro)
    hold = held.holds[0]
    out.write(f"   {bistro} -> {held.status}: [{hold.code}] {hold.message}\n")
    for aging in app.hold_aging():
        out.write(
            f"   hold aging: {aging.code}: {aging.count} order(s), oldest {aging.oldest_order_id} "
            f"for {aging.oldest_age}\n"
        )
    try:
        load_rules(DEMO_RULES.replace("order.total > 250 EUR", "order.totl > 250"))
    except oc.InvalidRuleSet as e:
        out.write(f"   a broken rule file is refused at load [{e.code}]:\n")
        for p in e.problems:
            out.write(f"     - {p}\n")
    return order


def _network() -> list[FulfilmentNode]:
    """Three warehouses and a Berlin store that also ships; 8 EUR a parcel plus 1 cent per unit and km."""
    cost = ShippingCost("EUR", per_shipment=Decimal(8), per_unit=Decimal("0.40"), per_unit_km=Decimal("0.01"))
    store = {Capability.PICKUP, Capability.SHIP_FROM_STORE}
    return [
        FulfilmentNode("WH-BERLIN", NodeKind.WAREHOUSE, oc.GeoPoint(52.43, 13.53), cost, priority=1),
        FulfilmentNode("WH-HAMBURG", NodeKind.WAREHOUSE, oc.GeoPoint(53.55, 10.00), cost, priority=2),
        FulfilmentNode("WH-MUNICH", NodeKind.WAREHOUSE, oc.GeoPoint(48.14, 11.58), cost, priority=3),
        FulfilmentNode(
            "STORE-MITTE", NodeKind.STORE, oc.GeoPoint(52.52, 13.41), cost, capabilities=store, priority=9
        ),
    ]


def _sourcing(app: oc.OrderCore, berlin: oc.Address, out: TextIO) -> oc.Order:
    """A customer in Berlin orders three products that no single nearby node holds together."""
    stock = {
        ("WH-BERLIN", "LAMP-OAK"): 4,
        ("WH-BERLIN", "MUG-BLUE"): 20,
        ("WH-HAMBURG", "LAMP-OAK"): 10,
        ("WH-HAMBURG", "TEA-GREEN"): 50,
        ("WH-HAMBURG", "MUG-BLUE"): 6,
        ("WH-MUNICH", "LAMP-OAK"): 10,
        ("WH-MUNICH", "MUG-BLUE"): 10,
        ("WH-MUNICH", "TEA-GREEN"): 30,
        ("STORE-MITTE", "MUG-BLUE"): 2,
    }
    system = oc.Actor.system("sourcing")
    for (node_id, sku), qty in stock.items():
        app.handle(ReceiveStock(node_id=node_id, sku=sku, quantity=qty, actor=oc.Actor.system("wms")))
    app.handle(
        ExpectSupply(
            node_id="WH-BERLIN",
            sku="TEA-GREEN",
            supply=Supply("PO-4711", 40, date(2026, 11, 9)),
            actor=oc.Actor.system("erp"),
        )
    )
    order_id = app.handle(
        oc.PlaceOrder(
            channel=oc.Channel("web"),
            external_ref="WEB-1002",
            actor=oc.Actor.channel("web"),
            customer=oc.CustomerRef(oc.CustomerId("C-ADA")),
            currency="EUR",
            shipping_address=berlin,
            lines=[
                oc.NewLine(oc.Sku("LAMP-OAK"), 1, _eur("149.00")),
                oc.NewLine(oc.Sku("MUG-BLUE"), 4, _eur("12.50")),
                oc.NewLine(oc.Sku("TEA-GREEN"), 2, _eur("6.00")),
            ],
        )
    ).order_id
    app.handle(oc.AcceptOrder(order_id=order_id, actor=oc.Actor.system("rules")))
    app.handle(SourceOrder(order_id=order_id, actor=system, reason="new order"))
    out.write(f"\n== sourcing {order_id} across {len(stock)} stock positions in 4 nodes\n")
    _explain(app.get_order(order_id), out)

    out.write("\n   WH-BERLIN reports a short pick of 2 mugs; they are sourced again elsewhere:\n")
    app.handle(
        ReportShortPick(
            order_id=order_id,
            node_id="WH-BERLIN",
            lines={"2": 2},
            actor=oc.Actor.system("wms"),
            reason="bin empty",
        )
    )
    _explain(app.get_order(order_id), out)

    out.write("\n   WH-HAMBURG goes offline; what it held and had not released moves:\n")
    for result in app.set_node_online("WH-HAMBURG", False):
        out.write(f"   re-sourced {result.order_id}\n")
    order = app.get_order(order_id)
    _explain(order, out)
    at = app.clock.now()
    for sku in ("LAMP-OAK", "MUG-BLUE", "TEA-GREEN"):
        per_node = app.available(sku, at=at)
        out.write(f"   available to promise {sku}: {sum(per_node.values())} ({per_node})\n")
    out.write("   timeline:\n")
    for line in order.timeline():
        out.write(f"   {line}\n")
    return order


def _explain(order: oc.Order, out: TextIO) -> None:
    plan = next(ev for ev in reversed(order.history) if isinstance(ev, oc.SourcingPlanned))
    proved = "proved optimal" if plan.optimal else "not proved optimal"
    out.write(f"   latest plan by {plan.strategy}: {plan.cost} ({proved}); the order now ships:\n")
    by_node: dict[str, list[str]] = {}
    for a in order.allocations:
        by_node.setdefault(a.node_id, []).append(f"{order.line(a.line_id).sku} x{a.quantity}")
    for node_id, items in by_node.items():
        out.write(f"     {node_id:<12} ships {', '.join(items)}\n")
    for w in plan.waiting:
        when = f"expected {w.expected_on} at {w.node_id}" if w.expected_on else "no supply known"
        out.write(f"     waiting      {order.line(w.line_id).sku} x{w.quantity} ({when})\n")
    for note in plan.notes:
        out.write(f"     why: {note}\n")
    for r in plan.rejected:
        out.write(f"     not {r.node_id}: {r.reason}" + (f" ({r.detail})" if r.detail else "") + "\n")
