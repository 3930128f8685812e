"""Lifecycle throughput: orders through the application layer, transitions on the aggregate, and a floor.

Every order goes place -> accept -> ship -> deliver, in memory. The three figures come from the same run:
each repeat takes the orders through the application layer, then builds them afresh and drives them on
the aggregate and on the floor in alternating chunks of 2,000 orders, so that load from elsewhere on the
machine falls on both sides of the ratio alike. As timeit does, the cyclic garbage collector runs before
each timed region and is paused inside it: otherwise one side would pay for scanning the other's objects,
and every figure would depend on the benchmark keeping all its orders alive at once.

* ``orders_per_s``: whole orders through the application layer. Per order the caller builds and handles
  ``PlaceOrder`` (creates and places the order), ``AcceptOrder``, ``RecordShipment`` and
  ``RecordDelivery``: each command runs in its own unit of work against the ``memory://`` store (load a
  copy, call the aggregate, commit with its version check, outbox), and every committed event is
  dispatched to a subscribed handler that counts it.
* ``transitions_per_s``: the four transitions on the :class:`ordercore.Order` aggregate itself. The orders
  are created with ``Order.create`` outside the timed region (creation is not a transition); the timed
  loop calls ``place``, ``accept``, ``ship(shipment_id=...)`` and ``deliver``, each of which checks its
  input, the line quantity buckets and the lifecycle, and records one event in ``order.history``.
* ``floor_transitions_per_s``: the same four transitions on the same orders and lines, written by hand in
  plain Python, the least a correct implementation has to do:

  - the actor must be given, the timestamp timezone-aware and the shipment id non-empty;
  - one dict lookup ``{(state, trigger): allowed targets}`` refuses a trigger the state has no exit for;
  - ship and deliver build the new per-line bucket counters first (ship asks for every unit not yet
    shipped and takes them from released, then allocated, then open units; deliver asks for every
    shipped unit), check on each line that the quantity requested is at most what the source buckets
    hold, refuse a move of zero units, and derive the new state from the summed counters exactly as
    :func:`ordercore.derive_status` does; place and accept take their single target from the table;
  - the target must be one the table allows; only then are the counters, the state and the version
    updated, so a refused transition changes nothing;
  - a tuple ``(order_id, sequence, trigger, new_state, actor, at)`` is appended to the order's history
    list.

  Both sides therefore check the same things and record what happened; what the floor leaves out is
  what the aggregate adds on top (typed events and errors, immutable values that validate themselves
  when built, a lifecycle users can extend), and that is the overhead ``ratio_vs_floor`` measures.

``ratio_vs_floor`` is our time per transition over the floor's (the target is at most 5). Figures are
medians over the repeats; the data are deterministic (fixed seed: 1 to 3 lines of 1 to 5 units per
order). Timings are reported, never asserted. The last line printed is a JSON object.

    python benchmarks/lifecycle.py            # 100,000 orders, 3 repeats
    python benchmarks/lifecycle.py --quick    # 10,000 orders, 3 repeats
    python benchmarks/lifecycle.py --profile  # also print where the aggregate spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from time import perf_counter

import ordercore
from ordercore import (
    AcceptOrder,
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    Money,
    NewLine,
    Order,
    OrderEvent,
    OrderId,
    OrderStatus,
    PlaceOrder,
    RecordDelivery,
    RecordShipment,
    Sku,
)

SEED = 20240601
TARGET_RATIO = 5.0
TRANSITIONS_PER_ORDER = 4
FULL_ORDERS, FULL_REPEATS = 100_000, 3
QUICK_ORDERS, QUICK_REPEATS = 10_000, 3
PROFILE_ORDERS = 10_000
CHUNK = 2_000  # orders per interleaved chunk

START = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
# one timestamp per transition, shared by both sides
STAMPS = tuple(START + timedelta(minutes=m) for m in (1, 2, 60, 1440))

CHANNEL = Channel("web")
CUSTOMER = CustomerRef(CustomerId("C-1"))
ADDRESS = Address(country="DE", postal_code="10115", city="Berlin", line1="Invalidenstrasse 1")
ACTOR = Actor.system("bench")
FLOOR_ACTOR = "system:bench"
SKUS = (Sku("A"), Sku("B"), Sku("C"))
PRICES = (Money.of("9.99", "EUR"), Money.of("24.50", "EUR"), Money.of("3.20", "EUR"))

Plan = list[tuple[int, ...]]


def make_plan(n_orders: int, seed: int = SEED) -> Plan:
    """Per order, the quantity of each of its lines (1-3 lines of 1-5 units)."""
    rng = random.Random(seed)
    return [tuple(rng.randint(1, 5) for _ in range(rng.randint(1, 3))) for _ in range(n_orders)]


def new_lines_for(plan: Plan) -> dict[tuple[int, ...], tuple[NewLine, ...]]:
    """The channel lines of each distinct order shape (values are immutable, so orders share them)."""
    return {shape: tuple(NewLine(SKUS[j], q, PRICES[j]) for j, q in enumerate(shape)) for shape in set(plan)}


def order_id(i: int) -> str:
    return f"O-{i:06d}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then pause the cyclic garbage collector for a timed region (as timeit does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- the application layer --------------------------------------------------------------------------------
def run_application(plan: Plan, lines: dict[tuple[int, ...], tuple[NewLine, ...]]) -> float:
    """Seconds to take every order of ``plan`` through the application layer."""
    app = ordercore.bootstrap(
        "memory://",
        clock=ordercore.ManualClock(START, tick=timedelta(seconds=1)),
        ids=ordercore.SequentialIds(),
    )
    dispatched = 0

    def on_event(event: OrderEvent) -> None:
        nonlocal dispatched
        dispatched += 1

    app.subscribe(OrderEvent, on_event)
    handle = app.handle
    with gc_paused():
        t0 = perf_counter()
        for i, shape in enumerate(plan):
            placed = handle(
                PlaceOrder(
                    channel=CHANNEL,
                    customer=CUSTOMER,
                    currency="EUR",
                    shipping_address=ADDRESS,
                    lines=lines[shape],
                )
            )
            oid = placed.order_id
            handle(AcceptOrder(order_id=oid))
            handle(RecordShipment(order_id=oid, shipment_id=f"S-{i}"))
            handle(RecordDelivery(order_id=oid))
        elapsed = perf_counter() - t0
    # created + placed, accepted, shipped, delivered
    expected = len(plan) * (TRANSITIONS_PER_ORDER + 1)
    if dispatched != expected or app.failures:
        raise SystemExit(f"application run dispatched {dispatched} events, expected {expected}")
    last = app.get_order(oid)
    if last.status is not OrderStatus.DELIVERED:
        raise SystemExit(f"application run left {oid} in {last.status}")
    app.close()
    return elapsed


# -- the aggregate ----------------------------------------------------------------------------------------
def build_orders(plan: Plan, lines: dict[tuple[int, ...], tuple[NewLine, ...]]) -> list[Order]:
    return [
        Order.create(
            order_id=OrderId(order_id(i)),
            channel=CHANNEL,
            customer=CUSTOMER,
            currency="EUR",
            shipping_address=ADDRESS,
            lines=lines[shape],
            actor=ACTOR,
            at=START,
        )
        for i, shape in enumerate(plan)
    ]


def drive_orders(orders: Sequence[Order]) -> None:
    at_place, at_accept, at_ship, at_deliver = STAMPS
    actor = ACTOR
    for order in orders:
        order.place(actor=actor, at=at_place)
        order.accept(actor=actor, at=at_accept)
        order.ship(shipment_id="S1", actor=actor, at=at_ship)
        order.deliver(actor=actor, at=at_deliver)


# -- the floor: the same transitions by hand ----------------------------------------------------------------
# bucket positions in a floor line: (ordered, open, backordered, allocated, released, shipped, delivered,
# returned, cancelled)
ORDERED, OPEN, BACKORDERED, ALLOCATED, RELEASED, SHIPPED, DELIVERED, RETURNED, CANCELLED = range(9)

_UNRELEASED = ("accepted", "partially_allocated", "allocated", "backordered")
_RELEASED = ("partially_released", "released")
FLOOR_TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("draft", "place"): frozenset({"placed"}),
    ("placed", "accept"): frozenset({"accepted"}),
    **{(s, "ship"): frozenset({"partially_shipped", "shipped"}) for s in (*_UNRELEASED, *_RELEASED)},
    ("partially_shipped", "ship"): frozenset({"partially_shipped", "shipped", "partially_delivered"}),
    ("partially_shipped", "deliver"): frozenset({"partially_shipped"}),
    **{
        (s, "deliver"): frozenset({"partially_delivered", "delivered", "partially_returned"})
        for s in ("shipped", "partially_delivered")
    },
}


class FloorIllegal(Exception):
    pass


class FloorOrder:
    __slots__ = ("accepted", "history", "id", "lines", "state", "version")

    def __init__(self, oid: str, quantities: tuple[int, ...]) -> None:
        self.id = oid
        self.state = "draft"
        self.accepted = False
        self.version = 1
        self.lines = tuple((q, q, 0, 0, 0, 0, 0, 0, 0) for q in quantities)
        self.history: list[tuple[str, int, str, str, str, datetime]] = [
            (oid, 1, "create", "draft", FLOOR_ACTOR, START)
        ]


def floor_derive(lines: tuple[tuple[int, ...], ...]) -> str:
    """derive_status over the summed bucket counters."""
    ordered = backordered = allocated = released = shipped = delivered = returned = cancelled = 0
    for ln in lines:
        ordered += ln[ORDERED]
        backordered += ln[BACKORDERED]
        allocated += ln[ALLOCATED]
        released += ln[RELEASED]
        shipped += ln[SHIPPED]
        delivered += ln[DELIVERED]
        returned += ln[RETURNED]
        cancelled += ln[CANCELLED]
    live = ordered - cancelled
    if live == 0:
        return "cancelled"
    if returned == live:
        return "returned"
    done = delivered + returned
    if done == live:
        return "partially_returned" if returned else "delivered"
    post = shipped + done
    if post == live:
        return "partially_delivered" if done else "shipped"
    if post:
        return "partially_shipped"
    if released == live:
        return "released"
    if released:
        return "partially_released"
    if allocated == live:
        return "allocated"
    if allocated:
        return "partially_allocated"
    if backordered:
        return "backordered"
    return "accepted"


def floor_commit(order: FloorOrder, trigger: str, target: str, actor: str, at: datetime) -> None:
    order.state = target
    order.version += 1
    order.history.append((order.id, order.version, trigger, target, actor, at))


def floor_decide(order: FloorOrder, trigger: str, actor: str, at: datetime) -> None:
    """place / accept: a decision with a single target."""
    if not actor or at.tzinfo is None:
        raise ValueError("an actor and a timezone-aware timestamp are required")
    targets = FLOOR_TABLE.get((order.state, trigger))
    if targets is None or len(targets) != 1:
        raise FloorIllegal(order.id, order.state, trigger)
    (target,) = targets
    if trigger == "accept":
        order.accepted = True
    floor_commit(order, trigger, target, actor, at)


def floor_ship(order: FloorOrder, shipment_id: str, actor: str, at: datetime) -> None:
    """Ship every unit not yet shipped, drawing from released, then allocated, then open units."""
    if not actor or at.tzinfo is None:
        raise ValueError("an actor and a timezone-aware timestamp are required")
    if not shipment_id:
        raise ValueError("shipment_id is required")
    targets = FLOOR_TABLE.get((order.state, "ship"))
    if targets is None:
        raise FloorIllegal(order.id, order.state, "ship")
    new_lines = []
    moved = 0
    for ln in order.lines:
        want = ln[RELEASED] + ln[ALLOCATED] + ln[OPEN]
        if want > ln[RELEASED] + ln[ALLOCATED] + ln[OPEN]:
            raise FloorIllegal(order.id, order.state, "ship", "quantity exceeded")
        left = want
        rel = min(left, ln[RELEASED])
        left -= rel
        alloc = min(left, ln[ALLOCATED])
        left -= alloc
        opn = min(left, ln[OPEN])
        new_lines.append(
            (
                ln[ORDERED],
                ln[OPEN] - opn,
                ln[BACKORDERED],
                ln[ALLOCATED] - alloc,
                ln[RELEASED] - rel,
                ln[SHIPPED] + want,
                ln[DELIVERED],
                ln[RETURNED],
                ln[CANCELLED],
            )
        )
        moved += want
    if not moved:
        raise FloorIllegal(order.id, order.state, "ship", "nothing to ship")
    lines = tuple(new_lines)
    target = floor_derive(lines) if order.accepted else order.state
    if target not in targets:
        raise FloorIllegal(order.id, order.state, "ship", target)
    order.lines = lines
    floor_commit(order, "ship", target, actor, at)


def floor_deliver(order: FloorOrder, actor: str, at: datetime) -> None:
    """Deliver every shipped unit."""
    if not actor or at.tzinfo is None:
        raise ValueError("an actor and a timezone-aware timestamp are required")
    targets = FLOOR_TABLE.get((order.state, "deliver"))
    if targets is None:
        raise FloorIllegal(order.id, order.state, "deliver")
    new_lines = []
    moved = 0
    for ln in order.lines:
        want = ln[SHIPPED]
        if want > ln[SHIPPED]:
            raise FloorIllegal(order.id, order.state, "deliver", "quantity exceeded")
        new_lines.append(
            (
                ln[ORDERED],
                ln[OPEN],
                ln[BACKORDERED],
                ln[ALLOCATED],
                ln[RELEASED],
                ln[SHIPPED] - want,
                ln[DELIVERED] + want,
                ln[RETURNED],
                ln[CANCELLED],
            )
        )
        moved += want
    if not moved:
        raise FloorIllegal(order.id, order.state, "deliver", "nothing to deliver")
    lines = tuple(new_lines)
    target = floor_derive(lines) if order.accepted else order.state
    if target not in targets:
        raise FloorIllegal(order.id, order.state, "deliver", target)
    order.lines = lines
    floor_commit(order, "deliver", target, actor, at)


def drive_floor(orders: Sequence[FloorOrder]) -> None:
    at_place, at_accept, at_ship, at_deliver = STAMPS
    actor = FLOOR_ACTOR
    for order in orders:
        floor_decide(order, "place", actor, at_place)
        floor_decide(order, "accept", actor, at_accept)
        floor_ship(order, "S1", actor, at_ship)
        floor_deliver(order, actor, at_deliver)


# -- both sides, interleaved --------------------------------------------------------------------------------
def run_transitions(plan: Plan, lines: dict[tuple[int, ...], tuple[NewLine, ...]]) -> tuple[float, float]:
    """Seconds for the four transitions of every order on the aggregate and on the floor (creation untimed).

    The orders are driven in chunks, alternately on one side and the other (and which side goes first
    alternates too), so that a burst of load from elsewhere on the machine falls on both sides alike.
    """
    ours = build_orders(plan, lines)
    floor = [FloorOrder(order_id(i), shape) for i, shape in enumerate(plan)]
    ours_s = floor_s = 0.0
    with gc_paused():
        for k, start in enumerate(range(0, len(plan), CHUNK)):
            stop = start + CHUNK
            for side in (0, 1) if k % 2 == 0 else (1, 0):
                if side == 0:
                    chunk_ours = ours[start:stop]
                    t0 = perf_counter()
                    drive_orders(chunk_ours)
                    ours_s += perf_counter() - t0
                else:
                    chunk_floor = floor[start:stop]
                    t0 = perf_counter()
                    drive_floor(chunk_floor)
                    floor_s += perf_counter() - t0
    done = TRANSITIONS_PER_ORDER + 1
    for order in ours:
        if order.status is not OrderStatus.DELIVERED or len(order.history) != done:
            raise SystemExit(f"aggregate run left {order.id} in {order.status}")
    for f in floor:
        if f.state != "delivered" or len(f.history) != done:
            raise SystemExit(f"floor run left {f.id} in {f.state}")
    return ours_s, floor_s


# -- reporting ----------------------------------------------------------------------------------------------
def profile_aggregate(plan: Plan, lines: dict[tuple[int, ...], tuple[NewLine, ...]]) -> str:
    """The top 25 functions by own time while driving ``plan`` through the aggregate."""
    orders = build_orders(plan, lines)
    profiler = cProfile.Profile()
    profiler.runcall(drive_orders, orders)
    out = io.StringIO()
    n = len(orders) * TRANSITIONS_PER_ORDER
    out.write(f"Aggregate profile: {len(orders):,} orders, {n:,} transitions (cProfile, by tottime)\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 orders instead of 100,000")
    parser.add_argument("--orders", type=int, help="number of orders (default 100,000; 10,000 quick)")
    parser.add_argument("--repeats", type=int, help="repeats to take the median of (default 3)")
    parser.add_argument("--profile", action="store_true", help="first print a profile of the aggregate")
    args = parser.parse_args(argv)
    n_orders = args.orders or (QUICK_ORDERS if args.quick else FULL_ORDERS)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    plan = make_plan(n_orders)
    lines = new_lines_for(plan)
    n_lines = sum(len(shape) for shape in plan)
    n_transitions = n_orders * TRANSITIONS_PER_ORDER

    if args.profile:
        print(profile_aggregate(plan[:PROFILE_ORDERS], lines))

    runs: dict[str, list[float]] = {"application": [], "aggregate": [], "floor": []}
    for r in range(repeats):
        runs["application"].append(run_application(plan, lines))
        ours_s, floor_s = run_transitions(plan, lines)
        runs["aggregate"].append(ours_s)
        runs["floor"].append(floor_s)
        print(
            f"repeat {r + 1}/{repeats}: "
            + ", ".join(f"{name} {secs[-1]:.2f} s" for name, secs in runs.items()),
            file=sys.stderr,
            flush=True,
        )

    app_s = statistics.median(runs["application"])
    agg_s = statistics.median(runs["aggregate"])
    floor_s = statistics.median(runs["floor"])
    orders_per_s = n_orders / app_s
    transitions_per_s = n_transitions / agg_s
    floor_transitions_per_s = n_transitions / floor_s
    ratio = (agg_s / n_transitions) / (floor_s / n_transitions)
    met = ratio <= TARGET_RATIO

    rows = (
        ("application layer (commands, UoW, memory)", "orders/s", "us/order", runs["application"], n_orders),
        ("aggregate (Order methods)", "transitions/s", "us/transition", runs["aggregate"], n_transitions),
        ("floor (plain Python, same checks)", "transitions/s", "us/transition", runs["floor"], n_transitions),
    )
    print(
        f"Lifecycle benchmark: {n_orders:,} orders, {n_lines:,} lines, place -> accept -> ship -> deliver "
        f"({TRANSITIONS_PER_ORDER} transitions/order), median of {repeats} repeat(s)"
    )
    print()
    print(f"{'':<42} {'median':>10} {'':<13}   {'median':>10} {'':<13}   {'min':>8} - {'max':>7}")
    for label, rate_unit, time_unit, secs, per in rows:
        med, lo, hi = (x / per * 1e6 for x in (statistics.median(secs), min(secs), max(secs)))
        print(
            f"{label:<42} {per / statistics.median(secs):>10,.0f} {rate_unit:<13}   "
            f"{med:>10,.2f} {time_unit:<13}   {lo:>8,.2f} - {hi:>7,.2f}"
        )
    print()
    print(
        f"ratio vs floor (our time per transition / floor's): {ratio:.2f}x   "
        f"target <= {TARGET_RATIO:g}x: {'met' if met else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "orders_per_s": round(orders_per_s, 1),
                "transitions_per_s": round(transitions_per_s, 1),
                "floor_transitions_per_s": round(floor_transitions_per_s, 1),
                "ratio_vs_floor": round(ratio, 3),
                "orders": n_orders,
                "transitions_per_order": TRANSITIONS_PER_ORDER,
                "quick": args.quick,
                "repeats": repeats,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
