"""The worker process of tests/integration/test_scarce_stock.py: one client sourcing one order.

It lives in its own importable module so that any multiprocessing start method (fork, forkserver, spawn)
can find it.
"""

from __future__ import annotations

import logging
import os
import random
import time
from decimal import Decimal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from threading import BrokenBarrierError
from typing import NamedTuple

from ordercore import Address, ConcurrencyConflict, GeoPoint, SourcingFailed, bootstrap
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.service.commands import SourceOrder
from ordercore.sourcing import SourcingPolicy

NODE = "WH-1"  # holds the scarce stock
OTHER_NODE = "WH-2"  # part of the network, holds none of it
SKU = "SCARCE"
#: how often one worker handles its command before it gives up on ConcurrencyConflict
MAX_ATTEMPTS = 200
#: how long a worker waits at the barrier for the others (they import nothing new under fork)
BARRIER_TIMEOUT_S = 60.0

CUSTOMER = Address(
    country="DE",
    postal_code="10115",
    city="Berlin",
    line1="Invalidenstr. 1",
    coordinates=GeoPoint(52.53, 13.38),
)

# outcomes a worker reports
SOURCED = "sourced"
OUT_OF_STOCK = "out_of_stock"
GAVE_UP = "gave_up"
CRASHED = "crashed"


class Report(NamedTuple):
    """What one worker tells the test."""

    order_id: str
    outcome: str
    conflicts: int  # ConcurrencyConflict raised to the worker, each followed by one more attempt
    bus_retries: int  # conflicts the message bus retried by itself (counted from its debug log)
    attempts: int
    released_at: float  # time.monotonic() (one clock for every process) when the barrier let it go
    done_at: float  # time.monotonic() at the outcome
    detail: str


class _BusRetries(logging.Handler):
    """Counts the retries the message bus logs after a conflict (when it retries by itself)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "conflicted" in record.getMessage():
            self.count += 1


def network() -> list[FulfilmentNode]:
    cost = ShippingCost("EUR", per_shipment=Decimal(8), per_unit_km=Decimal("0.01"))
    return [
        FulfilmentNode(NODE, NodeKind.WAREHOUSE, GeoPoint(52.52, 13.40), cost),
        FulfilmentNode(OTHER_NODE, NodeKind.WAREHOUSE, GeoPoint(53.55, 9.99), cost),
    ]


def source_when_released(url: str, order_id: str, barrier: Barrier, results: Queue[Report]) -> None:
    """Open an application on ``url``, wait for every other worker, then source ``order_id`` without
    backorders, handling the command again (after a short random pause) on ConcurrencyConflict as a real
    client would. Puts a :class:`Report` on ``results``."""
    conflicts = attempts = 0
    released = time.monotonic()
    bus_log = logging.getLogger("ordercore.bus")
    bus_retries = _BusRetries()
    bus_log.addHandler(bus_retries)
    bus_log.setLevel(logging.DEBUG)
    try:
        app = bootstrap(url, network=network())
    except BaseException as e:
        barrier.abort()  # the others must not wait for a worker that will never come
        now = time.monotonic()
        results.put(
            Report(order_id, CRASHED, 0, 0, 0, now, now, f"opening the application: {type(e).__name__}: {e}")
        )
        return
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    outcome, detail = GAVE_UP, ""
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        released = time.monotonic()
        command = SourceOrder(order_id=order_id, policy=SourcingPolicy(allow_backorder=False))
        while attempts < MAX_ATTEMPTS:
            attempts += 1
            try:
                app.handle(command)
            except ConcurrencyConflict as e:
                conflicts += 1
                detail = str(e)
                time.sleep(rng.uniform(0.0, 0.002 * min(attempts, 10)))
            except SourcingFailed as e:
                outcome, detail = OUT_OF_STOCK, str(e)
                break
            else:
                outcome, detail = SOURCED, ""
                break
    except BrokenBarrierError:
        outcome, detail = CRASHED, "the barrier broke: another worker could not start"
    except BaseException as e:
        outcome, detail = CRASHED, f"{type(e).__name__}: {e}"
    finally:
        app.close()
    results.put(
        Report(order_id, outcome, conflicts, bus_retries.count, attempts, released, time.monotonic(), detail)
    )
