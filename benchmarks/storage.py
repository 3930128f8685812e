"""Storage throughput: orders placed, accepted, sourced and persisted end to end, against the bare driver.

Every order goes ``PlaceOrder`` -> ``AcceptOrder`` -> ``SourceOrder`` through the application layer
(``app.handle``) against a store, as a service would run it. ordercore runs **each command in its own unit of
work, hence its own database transaction**: one order is three transactions, not one. Per order they write:

* place: ``INSERT`` the ``orders`` row (JSON body, version), its ``order_digests`` row (the customer's
  recent orders, which the duplicate-order rule reads) and two ``outbox`` rows (OrderCreated,
  StatusChanged);
* accept: ``UPDATE`` the ``orders`` row (checked against its version) and one ``outbox`` row;
* source: the check that the node states (which nodes are offline) are still those the plan was made
  with, ``UPDATE`` the ``orders`` row, one ``outbox`` row (SourcingPlanned, with the plan's explanation),
  and per stock position reserved from (one per line here) an ``UPDATE`` of the ``stock`` row checked
  against its version (the position's JSON, without its reservations), an ``INSERT`` of the reservation's
  ``stock_reservations`` row (its JSON, and its expiry column, NULL for an order's hard reservation) and
  one ``stock_ledger`` row.
  No ``node_capacity`` or ``idempotency_keys`` rows: the nodes have no capacity limits and the commands
  carry no idempotency key. No ``order_holds`` / ``order_backorders`` rows either, and the digest is not
  written again: an order's read model rows are written when they change, these orders are never held or
  backordered, and accepting or sourcing changes neither their items nor their total.

Figures, all measured in one run:

* ``memory_orders_per_s``: the three commands on the ``memory://`` store (no I/O: the cost of the core).
* ``sqlite_orders_per_s`` / ``postgres_orders_per_s``: the same on a SQLite file in a temporary folder
  (WAL, as the adapter opens it) and on a fresh PostgreSQL schema (dropped afterwards). Besides the writes,
  our side pays for everything a real call does: the unit of work's reads (the order, the stock positions
  of its SKUs), decoding and encoding JSON, sourcing (``cost_optimal``), the event dispatch, and taking a
  connection from the store's pool for each unit of work. Both adapters keep decoded copies of the orders
  and positions they last read or wrote, by version: every read still asks the database for the row's
  version, but the body travels and is decoded only when the row changed since (here, as in any single
  writer of its own SKUs, mostly never). Both keep the JSON text of each event they encoded, and of
  each immutable part of an order (lines, addresses, allocations) and of each reservation a position
  holds, so the order's body (which holds its whole history) costs the encoding of its new events and
  changed parts only, and the outbox row reuses it. What they do encode is written as JSON text straight
  from the objects' attributes (an encoder generated once per type from the converter's view, checked
  against the converter's own output on first use), the very text ``to_json`` gives. A new order's id is checked to be free by the ``INSERT`` itself, not by a read beforehand. The PostgreSQL adapter sends each commit as one text of statements with their
  values bound client-side (``EXECUTE`` of statements prepared once per connection), one round trip (PostgreSQL runs it as one transaction; each version check is
  made by the server, in the statement that writes the row), and checks a pooled connection with a round trip only when it was idle for a while or the server
  wrote to it.
* ``*_floor_orders_per_s``: the **same rows written with the bare driver** (``sqlite3`` / ``psycopg``), one
  connection held open, the same three transactions per order with the same statements, in the same
  order, with the same parameters: the JSON bodies are the very strings ordercore's serializer produced for
  these orders, recorded outside the timed region by running the same commands once on an in-memory
  SQLite store with a recording connection. On PostgreSQL the floor replays the SQLite adapter's recorded
  statements (``?`` as ``%s``; text values cast by the server to ``jsonb`` / ``timestamptz`` as the
  adapter's ``%s::jsonb`` does). The floor keeps the version checks made inside the transaction (the
  ``SELECT version`` of the node states, ``UPDATE ... WHERE version = ?`` with a row-count check); it does
  not do the reads outside the transaction, builds no objects and
  sources nothing: it is the least any store writing these rows must pay.
* ``*_ratio_vs_floor``: our throughput over the floor's (target: at least 0.5).
* ``sqlite_core_plus_floor_orders_per_s``: the three commands of each order on the ``memory://`` store,
  each followed by the floor's transaction for it on a SQLite file of its own: what ordercore would reach
  on SQLite if its adapter's own work (its reads, its encoding, its copies) cost nothing.
  ``sqlite_ceiling_ratio`` is that over the floor: the most any store built on this core could reach.
  It is well below the memory figure plus the floor's time because the core then runs between fsyncs,
  as it does in any SQLite store, and that makes it slower: while the thread waits on the disk, the
  processor's caches go cold (on the machines this ran on, a core that ran back to back at 1.0 ms per order
  took 1.9 ms of processor time per order with an fsync after each command). ``sqlite_ratio_vs_core_plus_floor``
  is ordercore's SQLite throughput over that ceiling: how much of what is left the adapter itself costs.
* ``*_user_ms_per_order``: the processor time in user mode per order (``getrusage``) of the memory run and
  of each SQLite side; ``sqlite_core_between_fsyncs_user_ms_per_order`` is the core's share of the core +
  floor run (its time less the floor's), to be read against ``memory_user_ms_per_order``, the same core
  back to back: how much slower the same code runs between fsyncs.
* ``sqlite_fsync_ms``: the median time of one ``fdatasync`` of a page just written, in the folder the
  SQLite files are in, measured in the same run: what each SQLite commit waits for (the adapter sets
  ``synchronous = FULL``, so that a commit it reports is on the disk). The floor's time
  is this wait and the system calls writing the pages, ordercore's mostly its processor time, so the
  ratio moves with the disk: the slower the fsync, the nearer to 1.
* ``memory_paused_user_ms_per_order`` / ``memory_back_to_back_user_ms_per_order``: the same core on
  ``memory://`` with a sleep of ``pause_ms`` (the floor's time per transaction in this run) after each
  command instead of a transaction, against back to back, interleaved in chunks: the sleep does no I/O, so
  if the paused core is as slow as between fsyncs, the slowdown comes from the thread waiting (on the
  machines this ran on, a virtual processor that idles comes back with cold caches), not from the disk.
* ``postgres_client_cpu_ms_per_order`` / ``postgres_server_cpu_ms_per_order`` (and ``postgres_floor_*``):
  the processor time per order of the PostgreSQL run above, ours and the floor's, in the benchmark's own
  process (user mode and kernel, ``getrusage``) and in the rest of the machine meanwhile (``/proc/stat``'s
  busy time less this process's: the server, and whatever else runs; not the time a virtual machine's
  host took, which it counts as steal). Null where there is no ``/proc/stat``. With the server on the
  same processors as the workers, their sum is what bounds the worker runs.
* ``postgres_workers``: orders/s with 1, 2 and 4 worker processes (``multiprocessing``, spawn), each with
  its own application on one fresh schema, together placing the same total number of orders. Each worker
  sources its own SKUs (stocked at every node), so workers never contend for one stock row. The clock runs
  from the moment all workers are ready (a barrier) to the moment the last one finishes. The runs come in
  rounds (``--rounds``, 3 by default, 1 with ``--quick``), each round running 1, 2 and 4 workers in turn on fresh schemas, and
  the medians over the rounds are reported: a single run of a few seconds on a shared machine swings by
  a third either way.
* ``sqlite_hot_sku_ms_first`` / ``sqlite_hot_sku_ms_last`` / ``sqlite_hot_sku_growth``: one SKU stocked at
  one node, ordered one unit at a time by 10,000 orders (300 with ``--quick``) on a SQLite file: the
  milliseconds per order over the first tenth and over the last, and their ratio. Every order leaves an
  open reservation on that one position, so the ratio stays near 1 only if writing a position costs the
  same however many reservations it holds (each is a row of its own), and so does changing the copies
  of it the store and each unit of work hold (they share their reservations), as it must for a
  best-seller. A full run's 10,000 orders also fill two of the store's bounded caches (4,096 decoded
  orders, 50,000 encoded parts of orders), so the last tenth pays for evicting from them.
  ``sqlite_hot_sku_two_writers_growth``: the same ratio with two applications on the file placing the
  orders in turn, as two worker processes would: each finds the position changed by the other at every
  order, and stays flat only if it reads what changed (the ledger entries its copy lacks), not the
  position whole.
* ``postgres_scaling_1_to_2``: the median over the rounds of each round's 2-worker throughput over its
  1-worker throughput (target: at least 1.7x; on a machine with fewer cores than workers plus the server,
  the server and the workers share them).
* ``postgres_floor_workers`` / ``postgres_floor_scaling_1_to_2``: the same for the floor: 1 and 2
  processes, each replaying with the bare driver on its own connection the very transactions ordercore's
  worker of that number commits (recorded as above, its own orders on its own SKUs), on a fresh schema, in
  the same rounds. It says how far plain commits of these rows scale on this server and machine, which
  bounds ordercore's scaling: where a commit's fsync takes longer than its processor time, two processes
  mostly wait on the disk together.
* ``postgres_workers_processors_busy`` / ``postgres_floor_workers_processors_busy`` (and ``*_stolen``):
  over each worker run's clock, how many processors the whole machine kept busy on average (``/proc/stat``:
  every process, the server's included; medians over the rounds) and how many its host took from it
  (steal); ``*_in_workers``: how many of them the worker processes themselves kept busy (``getrusage``
  in each, user mode and kernel), the rest being the server's; ``processors`` is how many the machine has.
  Busy over orders/s is the processor time one order costs,
  client and server together. Where one worker and its server already keep most of a processor busy, two
  workers on a machine of two processors can at best double that, and the time an order costs grows as
  the processes take turns on the same processors: the table prints both.

Each application is **warmed up** before its clock starts, as a long-running service already is: one order
placed, accepted and sourced on its own SKUs under an id outside the plan, and every position of its SKUs
read (see ``warm_up``). Without it the first timed orders pay for building the store's converters (cattrs
generates its hooks on first use), opening the first pooled connection and decoding every position once,
which in a worker run of 60 orders per process is a good part of the clock; the warm-up order is not
counted, and the floor needs none (its statements are prepared outside the timed region, its connection is
open). Ours and the floor (and, on SQLite, the core with the floor's writes) run interleaved in chunks of
orders (which side goes first moves on at every chunk), each on its own database, so that load from elsewhere on the machine falls on both alike. As timeit does, the cyclic
garbage collector runs before each timed chunk and is paused inside it. The network has 20 nodes across
Germany, each holding every SKU in plenty, so every order is fully allocated; orders have 1 to 3 lines of
1 to 5 units of 10 SKUs, shipped to customers spread across the country (fixed seed). PostgreSQL parts are
skipped, with their values null, when no server answers at ``--postgres`` (default
``postgresql://127.0.0.1:5432/test``, or ``ORDERCORE_TEST_POSTGRES_URL``). Timings are reported, never
asserted. The last line printed is a JSON object.

    python benchmarks/storage.py             # 1,500 orders per store, 1,000 for the worker runs
    python benchmarks/storage.py --quick     # 150 orders per store, 160 for the worker runs (under a minute)
    python benchmarks/storage.py --profile   # also print where ordercore spends its time on SQLite
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from time import monotonic, perf_counter, sleep
from typing import Any

import attrs

import ordercore
from ordercore import (
    AcceptOrder,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    Money,
    NewLine,
    OrderStatus,
    PlaceOrder,
    Sku,
)
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.service.commands import ReceiveStock, SourceOrder

SEED = 20240601
TARGET_RATIO = 0.5
TARGET_SCALING = 1.7
FULL_ORDERS, FULL_WORKER_ORDERS = 1_500, 1_000
QUICK_ORDERS, QUICK_WORKER_ORDERS = 150, 160
FULL_HOT_ORDERS, QUICK_HOT_ORDERS = 10_000, 300  # orders of the one hot SKU
FULL_ROUNDS, QUICK_ROUNDS = 3, 1  # rounds of the worker runs
WORKER_COUNTS = (1, 2, 4)
FLOOR_WORKER_COUNTS = (1, 2)  # the floor's worker runs: enough for its scaling from 1 to 2
CHUNK = 100  # orders per interleaved chunk
N_NODES, N_SKUS = 20, 10
STOCK_PER_POSITION = 10_000_000
DEFAULT_POSTGRES = "postgresql://127.0.0.1:5432/test"

START = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
SEED_AT = START - timedelta(days=1)
CHANNEL = Channel("web")
CUSTOMER = CustomerRef(CustomerId("C-1"))
PRICE = Money.of("9.99", "EUR")

# one order: (latitude, longitude, ((sku index, quantity), ...))
Plan = list[tuple[float, float, tuple[tuple[int, int], ...]]]
# a worker run: orders/s, processors busy and processors taken by the host on average (None: not known),
# and processors busy in the run's own processes
Raced = tuple[float, float | None, float | None, float]
# one recorded transaction: [(sql, params or list of params for executemany, is_many), ...]
Tx = list[tuple[str, Any, bool]]


# -- the data -----------------------------------------------------------------------------------------------
def network() -> list[FulfilmentNode]:
    """20 warehouses on a 4 x 5 grid over Germany."""
    cost = ShippingCost("EUR", per_shipment=Decimal(8), per_unit_km=Decimal("0.01"))
    return [
        FulfilmentNode(
            f"N{i:02d}", NodeKind.WAREHOUSE, GeoPoint(47.8 + (i // 5) * 1.6, 6.5 + (i % 5) * 1.8), cost
        )
        for i in range(N_NODES)
    ]


def sku(worker: int, j: int) -> str:
    return f"W{worker}-SKU-{j:02d}"


def make_plan(n_orders: int, seed: int = SEED) -> Plan:
    """Customers spread over Germany; 1-3 distinct SKUs per order, 1-5 units each."""
    rng = random.Random(seed)
    plan: Plan = []
    for _ in range(n_orders):
        skus = rng.sample(range(N_SKUS), rng.randint(1, 3))
        plan.append(
            (
                round(rng.uniform(47.5, 54.5), 3),
                round(rng.uniform(6.0, 14.5), 3),
                tuple((j, rng.randint(1, 5)) for j in skus),
            )
        )
    return plan


def place_command(entry: tuple[float, float, tuple[tuple[int, int], ...]], worker: int) -> PlaceOrder:
    lat, lon, lines = entry
    return PlaceOrder(
        channel=CHANNEL,
        customer=CUSTOMER,
        currency="EUR",
        shipping_address=Address(
            country="DE",
            postal_code="10115",
            city="Berlin",
            line1="Hauptstr. 1",
            coordinates=GeoPoint(lat, lon),
        ),
        lines=tuple(NewLine(Sku(sku(worker, j)), q, PRICE) for j, q in lines),
    )


def new_app(store: str | Any, *, clock_at: datetime = START, worker: int = 0) -> ordercore.OrderCore:
    return ordercore.bootstrap(
        store,
        clock=ordercore.ManualClock(clock_at, tick=timedelta(seconds=1)),
        ids=ordercore.SequentialIds(order_prefix=f"W{worker}"),
        network=network(),
    )


def run_orders(app: ordercore.OrderCore, plan: Plan, worker: int = 0) -> None:
    """place -> accept -> source every order of ``plan``: three commands, three transactions each."""
    handle = app.handle
    for entry in plan:
        oid = handle(place_command(entry, worker)).order_id
        handle(AcceptOrder(order_id=oid))
        handle(SourceOrder(order_id=oid))


def warm_up(app: ordercore.OrderCore, worker: int = 0) -> None:
    """What a long-running service has done before it takes this load, done here outside the timed region:
    one order placed, accepted and sourced on the worker's own SKUs under an id of its own (so the plan's
    ids are unchanged), then every position of its SKUs read. The store's converters are built, a pooled
    connection is open, and the positions are decoded, once."""
    warm = attrs.evolve(place_command(make_plan(1, SEED - 1)[0], worker), order_id=f"W{worker}-WARM-UP")
    oid = app.handle(warm).order_id
    app.handle(AcceptOrder(order_id=oid))
    app.handle(SourceOrder(order_id=oid))
    for j in range(N_SKUS):
        app.available(sku(worker, j), at=START)


def check_allocated(app: ordercore.OrderCore, n_orders: int, worker: int = 0) -> None:
    for i in (1, n_orders):
        order = app.get_order(f"W{worker}-{i:06d}")
        if order.status is not OrderStatus.ALLOCATED:
            raise SystemExit(f"order {order.id} ended {order.status}, expected allocated")


def user_time() -> float:
    """Seconds of processor time this process spent in user mode (microsecond resolution)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


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


# -- recording what ordercore writes --------------------------------------------------------------------------
class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows
        self.rowcount = -1

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None


class RecordingConnection(sqlite3.Connection):
    """Records every statement between BEGIN IMMEDIATE and COMMIT (with its parameters), one list per
    transaction."""

    txs: list[Tx]
    current: Tx | None = None

    def execute(self, sql: str, params: Any = (), /) -> Any:  # type: ignore[override]
        if sql == "BEGIN IMMEDIATE" and hasattr(self, "txs"):
            self.current = []
        elif sql == "COMMIT" and self.current is not None:
            self.txs.append(self.current)
            self.current = None
        elif self.current is not None:
            self.current.append((sql, tuple(params), False))
            if sql.startswith("SELECT"):
                return _Fetched(super().execute(sql, params).fetchall())
        return super().execute(sql, params)

    def executemany(self, sql: str, seq: Any, /) -> Any:  # type: ignore[override]
        rows = [tuple(r) for r in seq]
        if self.current is not None:
            self.current.append((sql, rows, True))
        return super().executemany(sql, rows)


def record(plan: Plan, workers: int, worker: int = 0) -> tuple[list[Tx], list[list[Tx]]]:
    """The transactions ordercore commits: stock for every worker's SKUs at every node (seeding), then
    those of ``plan`` placed by ``worker`` (three per order), on an in-memory SQLite store whose
    connection records them."""
    from ordercore_adapters.sqlite._store import SqliteStore

    class RecordingStore(SqliteStore):
        def _open(self) -> sqlite3.Connection:
            raw = sqlite3.connect(
                ":memory:", isolation_level=None, check_same_thread=False, factory=RecordingConnection
            )
            raw.execute("PRAGMA foreign_keys = ON")
            return raw

    store = RecordingStore(None)
    conn = store.connect().raw
    assert isinstance(conn, RecordingConnection)
    conn.txs = []
    app = new_app(store, clock_at=SEED_AT)
    for w in range(workers):
        for node in network():
            for j in range(N_SKUS):
                app.handle(
                    ReceiveStock(
                        node_id=node.node_id, sku=sku(w, j), quantity=STOCK_PER_POSITION, reason="open"
                    )
                )
    seed_txs, conn.txs = conn.txs, []
    app = new_app(store, worker=worker)
    run_orders(app, plan, worker)
    check_allocated(app, len(plan), worker)
    order_txs = conn.txs
    if len(order_txs) != 3 * len(plan):
        raise SystemExit(f"recorded {len(order_txs)} transactions for {len(plan)} orders, expected 3 each")
    store.close()
    return seed_txs, [order_txs[3 * i : 3 * i + 3] for i in range(len(plan))]


# -- the floor on SQLite: the recorded statements, replayed verbatim ------------------------------------------
def sqlite_floor_connect(path: str) -> sqlite3.Connection:
    """A connection opened as the adapter opens its own (autocommit, busy timeout, foreign keys, WAL)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # as the adapter opens its files
    return conn


def sqlite_replay(conn: sqlite3.Connection, txs: Sequence[Tx]) -> None:
    execute, executemany = conn.execute, conn.executemany
    for tx in txs:
        execute("BEGIN IMMEDIATE")
        for sql, params, many in tx:
            if many:
                executemany(sql, params)
            elif sql[0] == "S":  # a version check
                execute(sql, params).fetchone()
            elif execute(sql, params).rowcount != 1 and sql[0] == "U":
                raise SystemExit(f"floor: {sql[:40]} touched no row")
        execute("COMMIT")


# -- the floor on PostgreSQL: the same rows in the PostgreSQL adapter's statements ---------------------------
def pg_statements(txs: Sequence[Tx]) -> list[Tx]:
    """The recorded transactions in PostgreSQL's parameter style, prepared outside the timed region.

    The statements are the SQLite adapter's, whatever they are (``?`` becomes ``%s``); values travel as the
    recorded text, which PostgreSQL casts to the column's type (``jsonb`` bodies, ``timestamptz`` times) as
    the PostgreSQL adapter's ``%s::jsonb`` does. The version checks stay as the SQLite adapter makes them (a
    ``SELECT version`` of the node states, ``UPDATE ... WHERE version = ?`` with a row-count check)."""
    return [[(sql.replace("?", "%s"), params, many) for sql, params, many in tx] for tx in txs]


def pg_replay(conn: Any, txs: Sequence[Tx]) -> None:
    for tx in txs:
        with conn.transaction(), conn.cursor() as cur:
            for sql, params, many in tx:
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
                    if sql[0] == "U" and cur.rowcount != 1:
                        raise SystemExit(f"floor: {sql[:40]} touched no row")


# -- PostgreSQL helpers -----------------------------------------------------------------------------------
def pg_reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # any failure to reach the server skips the PostgreSQL parts
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


def pg_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def pg_connect(base: str, schema: str) -> Any:
    import psycopg
    from psycopg import sql

    conn = psycopg.connect(base, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def pg_drop(base: str, schemas: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def pg_prepare(base: str, schema: str, seed_pg: Sequence[Tx]) -> None:
    """A fresh schema made by the adapter, then seeded with the recorded stock (bare driver, untimed)."""
    from ordercore_adapters.postgres._store import PostgresStore

    PostgresStore.from_url(pg_url(base, schema)).close()
    with pg_connect(base, schema) as conn:
        pg_replay(conn, seed_pg)


# -- ours against the floor, interleaved --------------------------------------------------------------------
def process_time() -> float:
    """Seconds of processor time this process spent, in user mode and in the kernel."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float | None:
    """Seconds of processor time the whole machine has been busy (every process, user mode, kernel and
    interrupts; not idle, not waiting on I/O, not the time a virtual machine's host took from it, which
    ``/proc/stat`` counts as steal), or None where there is no ``/proc/stat``."""
    times = machine_times()
    return None if times is None else times[0]


def machine_times() -> tuple[float, float] | None:
    """Seconds of processor time the whole machine has been busy (as :func:`machine_busy`) and seconds
    its host took from it (``steal``), summed over its processors; None where there is no
    ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def interleave(
    n_orders: int, *sides: Callable[[int, int], None], split: list[list[float]] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Seconds on each side for orders [0, n_orders), in chunks taken by each side in turn (which side goes
    first moves on by one at every chunk), and the seconds of processor time in user mode each spent. With
    ``split`` (one ``[this process, the rest of the machine]`` pair per side), each side's processor time
    is added to it: this process's (user and kernel) and the rest of the machine's meanwhile (a database
    server on it, say); the rest stays 0 where the machine's total is not known."""
    spent = [0.0] * len(sides)
    user = [0.0] * len(sides)
    for k, start in enumerate(range(0, n_orders, CHUNK)):
        stop = min(start + CHUNK, n_orders)
        for j in range(len(sides)):
            side = (k + j) % len(sides)
            with gc_paused():
                if split is not None:
                    m0, p0 = machine_busy(), process_time()
                u0, t0 = user_time(), perf_counter()
                sides[side](start, stop)
                spent[side] += perf_counter() - t0
                user[side] += user_time() - u0
                if split is not None:
                    p1, m1 = process_time(), machine_busy()
                    split[side][0] += p1 - p0
                    if m0 is not None and m1 is not None:
                        split[side][1] += max(0.0, (m1 - m0) - (p1 - p0))
    return tuple(spent), tuple(user)


def fsync_ms(folder: str, samples: int = 200) -> float:
    """The median milliseconds one ``fdatasync`` of a page just written takes in ``folder``: what every
    SQLite commit waits for (the adapter sets ``synchronous = FULL``, so that a commit reported is on the
    disk)."""
    path = os.path.join(folder, "fsync.probe")
    page = b"\0" * 4096
    times = []
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for i in range(samples):
            os.pwrite(fd, page, 4096 * (i % 16))
            t0 = perf_counter()
            os.fdatasync(fd)
            times.append(perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return 1000 * statistics.median(times)


def bench_hot_sku(n_orders: int, folder: str, writers: int) -> tuple[float, float]:
    """Seconds per order over the first and the last tenth of ``n_orders`` orders of one unit each, all
    of one SKU stocked at one node, on a SQLite file, placed in turn by ``writers`` applications (each
    with its own store, as worker processes have): every order adds an open reservation to that one
    position, so a store whose writes or reads grow with the reservations a position holds shows it here
    (with two writers, each finds the position changed by the other at every order)."""
    path = os.path.join(folder, f"hot-{writers}.db")
    seed = new_app(f"sqlite:///{path}", clock_at=SEED_AT)
    seed.handle(ReceiveStock(node_id="N00", sku="HOT-1", quantity=STOCK_PER_POSITION, reason="open"))
    seed.close()
    apps = [new_app(f"sqlite:///{path}", worker=w) for w in range(writers)]

    def hot(entry: tuple[float, float, tuple[tuple[int, int], ...]]) -> PlaceOrder:
        return attrs.evolve(place_command(entry, 0), lines=(NewLine(Sku("HOT-1"), 1, PRICE),))

    for w, app in enumerate(apps):  # warmed up, as a service is: the first tenth is not its first orders
        oid = app.handle(attrs.evolve(hot(make_plan(1, SEED - 1)[0]), order_id=f"HOT-WARM-UP-{w}")).order_id
        app.handle(AcceptOrder(order_id=oid))
        app.handle(SourceOrder(order_id=oid))
    tenth = max(n_orders // 10, 1)
    spans: list[float] = []
    with gc_paused():
        for k, entry in enumerate(make_plan(n_orders, SEED + 1)):
            if k % tenth == 0:
                spans.append(perf_counter())
            handle = apps[k % writers].handle
            oid = handle(hot(entry)).order_id
            handle(AcceptOrder(order_id=oid))
            handle(SourceOrder(order_id=oid))
        spans.append(perf_counter())
    for app in apps:
        app.close()
    return (spans[1] - spans[0]) / tenth, (spans[-1] - spans[-2]) / (n_orders - tenth * (len(spans) - 2))


def memory_app() -> ordercore.OrderCore:
    """An application on a ``memory://`` store holding worker 0's SKUs at every node, warmed up."""
    app = new_app("memory://")
    for node in network():
        for j in range(N_SKUS):
            app.handle(
                ReceiveStock(node_id=node.node_id, sku=sku(0, j), quantity=STOCK_PER_POSITION, reason="open")
            )
    warm_up(app)
    return app


def bench_memory(plan: Plan) -> tuple[float, float]:
    """Seconds for ``plan`` on the ``memory://`` store, and its processor time in user mode."""
    app = memory_app()
    with gc_paused():
        u0, t0 = user_time(), perf_counter()
        run_orders(app, plan)
        elapsed, user = perf_counter() - t0, user_time() - u0
    check_allocated(app, len(plan))
    app.close()
    return elapsed, user


def bench_sqlite(
    plan: Plan, seed_txs: list[Tx], order_txs: list[list[Tx]], folder: str
) -> tuple[tuple[float, float, float], tuple[float, ...]]:
    """Seconds for ``plan`` on a SQLite file: ordercore's, the floor's, and the core's with the floor's
    writes (see :func:`core_and_floor`), interleaved; and the processor time in user mode of each."""
    paths = [os.path.join(folder, f"{name}.db") for name in ("ours", "floor", "core")]
    for path in paths:
        ordercore.bootstrap(f"sqlite:///{path}").close()  # the adapter creates the schema
        with sqlite_floor_connect(path) as conn:
            sqlite_replay(conn, seed_txs)
        conn.close()
    app = new_app(f"sqlite:///{paths[0]}")
    warm_up(app)
    floor_conn, core_conn = sqlite_floor_connect(paths[1]), sqlite_floor_connect(paths[2])
    flat = [tx for txs in order_txs for tx in txs]
    core_app = memory_app()

    def ours(a: int, b: int) -> None:
        run_orders(app, plan[a:b])

    def floor(a: int, b: int) -> None:
        sqlite_replay(floor_conn, flat[3 * a : 3 * b])

    def core(a: int, b: int) -> None:
        core_and_floor(core_app, plan[a:b], core_conn, flat[3 * a : 3 * b])

    (ours_s, floor_s, core_s), user = interleave(len(plan), ours, floor, core)
    check_allocated(app, len(plan))
    check_allocated(core_app, len(plan))
    for done in (app, core_app):
        done.close()
    floor_conn.close()
    core_conn.close()
    return (ours_s, floor_s, core_s), user


def core_and_floor(app: ordercore.OrderCore, plan: Plan, conn: sqlite3.Connection, txs: Sequence[Tx]) -> None:
    """Each command of ``plan`` run on the ``memory://`` store, then the floor's transaction for it written
    with the bare driver: what ordercore would cost on SQLite if its adapter's own work (its reads, its
    encoding, its copies) cost nothing. The core's work runs between fsyncs, as it does in a SQLite store,
    where it runs slower than back to back (the processor's caches go cold while the thread waits)."""
    handle = app.handle
    for i, entry in enumerate(plan):
        oid = handle(place_command(entry, 0)).order_id
        sqlite_replay(conn, txs[3 * i : 3 * i + 1])
        handle(AcceptOrder(order_id=oid))
        sqlite_replay(conn, txs[3 * i + 1 : 3 * i + 2])
        handle(SourceOrder(order_id=oid))
        sqlite_replay(conn, txs[3 * i + 2 : 3 * i + 3])


def bench_paused(plan: Plan, pause_s: float) -> tuple[float, float]:
    """The processor time in user mode of the ``memory://`` core on ``plan``, back to back and with a sleep
    of ``pause_s`` after each command, interleaved on two applications: the sleep stands where the floor's
    transaction would be, but does no I/O. If the core slows down as much as between the floor's fsyncs,
    what slows it is the thread waiting, whatever it waits on, not the disk."""
    apps = [memory_app(), memory_app()]

    def back_to_back(a: int, b: int) -> None:
        run_orders(apps[0], plan[a:b])

    def paused(a: int, b: int) -> None:
        handle = apps[1].handle
        for entry in plan[a:b]:
            oid = handle(place_command(entry, 0)).order_id
            sleep(pause_s)
            handle(AcceptOrder(order_id=oid))
            sleep(pause_s)
            handle(SourceOrder(order_id=oid))
            sleep(pause_s)

    _, (plain_user, paused_user) = interleave(len(plan), back_to_back, paused)
    for app in apps:
        check_allocated(app, len(plan))
        app.close()
    return plain_user, paused_user


def bench_postgres(
    plan: Plan, base: str, seed_pg: list[Tx], order_txs: list[list[Tx]], tag: str
) -> tuple[float, float, list[list[float]]]:
    """Seconds for ``plan`` on PostgreSQL, ours and the floor's, interleaved, and the processor time each
    took (``[this process, the rest of the machine]``, seconds; see :func:`interleave`)."""
    ours_schema, floor_schema = f"bench_storage_{tag}_ours", f"bench_storage_{tag}_floor"
    try:
        for schema in (ours_schema, floor_schema):
            pg_prepare(base, schema, seed_pg)
        app = new_app(pg_url(base, ours_schema))
        warm_up(app)
        floor_conn = pg_connect(base, floor_schema)
        flat = pg_statements([tx for txs in order_txs for tx in txs])

        def ours(a: int, b: int) -> None:
            run_orders(app, plan[a:b])

        def floor(a: int, b: int) -> None:
            pg_replay(floor_conn, flat[3 * a : 3 * b])

        split = [[0.0, 0.0], [0.0, 0.0]]
        (ours_s, floor_s), _ = interleave(len(plan), ours, floor, split=split)
        check_allocated(app, len(plan))
        app.close()
        floor_conn.close()
        return ours_s, floor_s, split
    finally:
        pg_drop(base, (ours_schema, floor_schema))


def _worker(url: str, worker: int, plan: Plan, barrier: Any, results: Any) -> None:
    try:
        app = new_app(url, worker=worker)
        warm_up(app, worker)
        barrier.wait(timeout=120)
        m0, c0, t0 = machine_times(), process_time(), monotonic()
        run_orders(app, plan, worker)
        t1, c1, m1 = monotonic(), process_time(), machine_times()
        barrier.wait(timeout=900)  # wind down only once all are done: not inside another's clock
        check_allocated(app, len(plan), worker)
        app.close()
        results.put((t0, t1, m0, m1, c1 - c0))
    except BaseException as e:  # reported by the parent; never leave it waiting
        barrier.abort()
        results.put((f"{type(e).__name__}: {str(e)[:300]}", None, None, None, 0.0))


def _floor_worker(base: str, schema: str, txs: list[Tx], barrier: Any, results: Any) -> None:
    try:
        conn = pg_connect(base, schema)
        barrier.wait(timeout=120)
        m0, c0, t0 = machine_times(), process_time(), monotonic()
        pg_replay(conn, txs)
        t1, c1, m1 = monotonic(), process_time(), machine_times()
        barrier.wait(timeout=900)
        conn.close()
        results.put((t0, t1, m0, m1, c1 - c0))
    except BaseException as e:  # reported by the parent; never leave it waiting
        barrier.abort()
        results.put((f"{type(e).__name__}: {str(e)[:300]}", None, None, None, 0.0))


def race(
    n: int,
    n_total: int,
    base: str,
    seed_pg: list[Tx],
    schema: str,
    label: str,
    target: Callable[..., None],
    args_of: Callable[[int, int], tuple[Any, ...]],
) -> Raced:
    """Orders/s of ``n`` processes (``multiprocessing``, spawn) running ``target(*args_of(w, share),
    barrier, results)`` on a fresh schema, each ``share`` of ``n_total`` orders, from the moment all are
    ready (a barrier) to the moment the last one finishes; and, over that time, how many processors the
    whole machine kept busy on average (the processes, the server and whatever else runs) and how many
    its host took (steal), None where there is no ``/proc/stat``."""
    ctx = mp.get_context("spawn")
    try:
        pg_prepare(base, schema, seed_pg)
        share = n_total // n
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=target, args=(*args_of(w, share), barrier, results)) for w in range(n)]
        for p in procs:
            p.start()
        times = [results.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        if any(t[1] is None for t in times):
            failed = [t[0] for t in times if t[1] is None and "BrokenBarrier" not in t[0]]
            raise SystemExit(f"{n} {label}(s): {failed[0] if failed else 'one failed'}")
        first, last = min(times, key=lambda t: t[0]), max(times, key=lambda t: t[1])
        wall = last[1] - first[0]
        busy = stolen = None
        if first[2] is not None and last[3] is not None:
            busy, stolen = ((end - start) / wall for start, end in zip(first[2], last[3], strict=True))
        own = sum(t[4] for t in times) / wall  # the processes' own processor time, as processors
        print(
            f"  {n} {label}(s): {share * n:,} orders in {wall:.2f} s"
            + ("" if busy is None else f", {busy:.2f} processors busy ({own:.2f} in the processes)")
            + ("" if stolen is None else f", {stolen:.2f} taken by the host"),
            file=sys.stderr,
            flush=True,
        )
        return share * n / wall, busy, stolen, own
    finally:
        pg_drop(base, (schema,))


def run_workers(n: int, n_total: int, base: str, seed_pg: list[Tx], schema: str) -> Raced:
    """Orders/s of ``n`` worker processes, each placing its share on its own SKUs, on a fresh schema."""
    return race(
        n,
        n_total,
        base,
        seed_pg,
        schema,
        "worker",
        _worker,
        lambda w, share: (pg_url(base, schema), w, make_plan(share, SEED + w)),
    )


def run_floor_workers(
    n: int, n_total: int, base: str, seed_pg: list[Tx], worker_txs: list[list[Tx]], schema: str
) -> Raced:
    """Orders/s of ``n`` processes replaying, each with the bare driver on its own connection, the
    transactions ordercore's worker of the same number commits (its own orders, on its own SKUs) on a
    fresh schema: how far the server and the machine let plain commits scale."""
    return race(
        n,
        n_total,
        base,
        seed_pg,
        schema,
        "floor worker",
        _floor_worker,
        lambda w, share: (base, schema, pg_statements(worker_txs[w][: 3 * share])),
    )


def record_workers(n_total: int) -> list[list[Tx]]:
    """What ordercore's workers 0 and 1 commit in the worker runs, flat, for the floor's worker runs (each
    worker's plan as :func:`run_workers` makes it, as long as the longest run of that worker)."""
    recorded = []
    for w in range(max(FLOOR_WORKER_COUNTS)):
        longest = n_total // min(n for n in FLOOR_WORKER_COUNTS if n > w)
        _, txs = record(make_plan(longest, SEED + w), max(WORKER_COUNTS), worker=w)
        recorded.append([tx for order in txs for tx in order])
    return recorded


@attrs.frozen
class WorkerFigures:
    """Medians over the rounds, per process count: orders/s, processors busy and taken by the host (None
    where not known); and the median of each round's 2-process over 1-process throughput."""

    rates: dict[str, float | None]
    busy: dict[str, float | None]
    stolen: dict[str, float | None]
    own: dict[str, float | None]
    scaling: float | None

    @classmethod
    def unknown(cls, counts: Sequence[int]) -> WorkerFigures:
        """No figures for ``counts``: the worker runs were skipped or failed."""
        nothing: dict[str, float | None] = {str(n): None for n in counts}
        return cls(dict(nothing), dict(nothing), dict(nothing), dict(nothing), None)


def bench_workers(
    n_total: int, base: str, seed_pg: list[Tx], tag: str, rounds: int, worker_txs: list[list[Tx]]
) -> tuple[WorkerFigures, WorkerFigures]:
    """The figures of 1, 2, 4 worker processes over ``rounds`` rounds (each round runs every count once,
    in turn, then the floor's 1 and 2, so that load from elsewhere falls on all of them alike), and the
    same for the floor."""
    runs: dict[int, list[Raced]] = {n: [] for n in WORKER_COUNTS}
    floor_runs: dict[int, list[Raced]] = {n: [] for n in FLOOR_WORKER_COUNTS}
    for r in range(rounds):
        for n in WORKER_COUNTS:
            runs[n].append(run_workers(n, n_total, base, seed_pg, f"bench_storage_{tag}_r{r}_w{n}"))
        for n in FLOOR_WORKER_COUNTS:
            floor_runs[n].append(
                run_floor_workers(n, n_total, base, seed_pg, worker_txs, f"bench_storage_{tag}_r{r}_f{n}")
            )

    def median_of(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if len(known) == len(values) else None

    def figures(by_count: dict[int, list[Raced]]) -> WorkerFigures:
        scaling = statistics.median(
            two[0] / one[0] for one, two in zip(by_count[1], by_count[2], strict=True)
        )
        return WorkerFigures(
            {str(n): statistics.median(r[0] for r in v) for n, v in by_count.items()},
            {str(n): median_of([r[1] for r in v]) for n, v in by_count.items()},
            {str(n): median_of([r[2] for r in v]) for n, v in by_count.items()},
            {str(n): statistics.median(r[3] for r in v) for n, v in by_count.items()},
            scaling,
        )

    return figures(runs), figures(floor_runs)


def profile_sqlite(plan: Plan, seed_txs: list[Tx], folder: str) -> str:
    """The top 30 functions by cumulative and own time while ordercore runs ``plan`` on SQLite."""
    path = os.path.join(folder, "profile.db")
    ordercore.bootstrap(f"sqlite:///{path}").close()
    with sqlite_floor_connect(path) as conn:
        sqlite_replay(conn, seed_txs)
    conn.close()
    app = new_app(f"sqlite:///{path}")
    warm_up(app)
    profiler = cProfile.Profile()
    profiler.runcall(run_orders, app, plan)
    app.close()
    out = io.StringIO()
    out.write(f"SQLite profile: {len(plan):,} orders, {3 * len(plan):,} commands (cProfile)\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    return out.getvalue()


# -- reporting ----------------------------------------------------------------------------------------------
def rate(n: int, secs: float | None) -> float | None:
    return None if not secs else n / secs


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "skipped" if x is None else format(x, spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 orders per store instead of 1,500")
    parser.add_argument("--orders", type=int, help="orders per store (default 1,500; 150 quick)")
    parser.add_argument(
        "--worker-orders", type=int, help="total orders per worker run (default 1,000; 240 quick)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("ORDERCORE_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL server and database (a fresh schema is created and dropped)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile ordercore on SQLite")
    parser.add_argument(
        "--rounds", type=int, help="rounds of the worker runs, medians reported (default 3; 1 quick)"
    )
    args = parser.parse_args(argv)
    n_orders = args.orders or (QUICK_ORDERS if args.quick else FULL_ORDERS)
    n_worker_orders = args.worker_orders or (QUICK_WORKER_ORDERS if args.quick else FULL_WORKER_ORDERS)
    n_hot = QUICK_HOT_ORDERS if args.quick else FULL_HOT_ORDERS
    base = args.postgres.split("?schema=")[0]
    plan = make_plan(n_orders)
    n_lines = sum(len(e[2]) for e in plan)
    tag = uuid.uuid4().hex[:8]

    print("recording what ordercore writes (in-memory SQLite, untimed)...", file=sys.stderr, flush=True)
    seed_txs, order_txs = record(plan, max(WORKER_COUNTS))
    folder = tempfile.mkdtemp(prefix="ordercore-bench-")
    try:
        print("memory...", file=sys.stderr, flush=True)
        memory_s, memory_user = bench_memory(plan)
        print("sqlite...", file=sys.stderr, flush=True)
        (sqlite_s, sqlite_floor_s, sqlite_core_s), sqlite_user = bench_sqlite(
            plan, seed_txs, order_txs, folder
        )
        pause_s = sqlite_floor_s / (3 * n_orders)  # the floor's time per transaction
        fsync = fsync_ms(folder)
        print("memory, with a sleep for each transaction...", file=sys.stderr, flush=True)
        plain_user, paused_user = bench_paused(plan, pause_s)
        print("sqlite, one hot SKU...", file=sys.stderr, flush=True)
        hot = {writers: bench_hot_sku(n_hot, folder, writers) for writers in (1, 2)}
        profile_text = profile_sqlite(plan[: min(n_orders, 1000)], seed_txs, folder) if args.profile else ""
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    pg_s = pg_floor_s = None
    pg_split: list[list[float]] | None = None
    ours_w, floor_w = WorkerFigures.unknown(WORKER_COUNTS), WorkerFigures.unknown(FLOOR_WORKER_COUNTS)
    why_not = pg_reachable(base)
    if why_not is None:
        seed_pg = pg_statements(seed_txs)
        print("postgres...", file=sys.stderr, flush=True)
        try:
            pg_s, pg_floor_s, pg_split = bench_postgres(plan, base, seed_pg, order_txs, tag)
        except ordercore.OrderCoreError as e:  # reported, with the figures null, rather than hidden
            print(f"PostgreSQL run FAILED: {type(e).__name__}: {e}", flush=True)
        print("postgres workers...", file=sys.stderr, flush=True)
        try:
            rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
            worker_txs = record_workers(n_worker_orders)
            ours_w, floor_w = bench_workers(n_worker_orders, base, seed_pg, tag, rounds, worker_txs)
        except (ordercore.OrderCoreError, SystemExit) as e:
            print(f"PostgreSQL worker run FAILED: {type(e).__name__}: {e}", flush=True)
    else:
        print(f"PostgreSQL skipped: no server at {base} ({why_not})", file=sys.stderr, flush=True)

    memory_rate = rate(n_orders, memory_s)
    sqlite_rate, sqlite_floor_rate = rate(n_orders, sqlite_s), rate(n_orders, sqlite_floor_s)
    pg_rate, pg_floor_rate = rate(n_orders, pg_s), rate(n_orders, pg_floor_s)
    sqlite_core_rate = rate(n_orders, sqlite_core_s)
    sqlite_ratio = sqlite_rate / sqlite_floor_rate if sqlite_rate and sqlite_floor_rate else None
    # the most any store on this core could reach, and how near ordercore's own comes to it
    sqlite_ceiling = sqlite_core_rate / sqlite_floor_rate if sqlite_core_rate and sqlite_floor_rate else None
    sqlite_of_ceiling = sqlite_rate / sqlite_core_rate if sqlite_rate and sqlite_core_rate else None
    pg_ratio = pg_rate / pg_floor_rate if pg_rate and pg_floor_rate else None
    # processor time per order, ms: [ours, floor] x [this process, the rest of the machine (the server)]
    pg_cpu = (
        [[1000 * t / n_orders for t in side] for side in pg_split]
        if pg_split is not None and machine_busy() is not None
        else None
    )
    # processor time in user mode per order: the core's between fsyncs (core + floor, less the floor's)
    # against back to back (memory)
    memory_user_ms, sqlite_user_ms, floor_user_ms, core_user_ms = (
        t / n_orders * 1000 for t in (memory_user, *sqlite_user)
    )
    core_between_fsyncs = core_user_ms - floor_user_ms
    plain_user_ms, paused_user_ms = (t / n_orders * 1000 for t in (plain_user, paused_user))

    if profile_text:
        print(profile_text)
    print(
        f"Storage benchmark: {n_orders:,} orders ({n_lines:,} lines) per store, place -> accept -> source, "
        f"3 transactions per order; {N_NODES} nodes, {N_SKUS} SKUs; worker runs: {n_worker_orders:,} orders"
    )
    print()
    print(f"{'':<44} {'orders/s':>10} {'ms/order':>10} {'tx/s':>10}")
    rows = (
        ("memory:// (application layer, no I/O)", memory_rate),
        ("SQLite file: ordercore", sqlite_rate),
        ("SQLite file: floor (sqlite3, same rows)", sqlite_floor_rate),
        ("SQLite file: memory:// core + floor's writes", sqlite_core_rate),
        ("PostgreSQL: ordercore", pg_rate),
        ("PostgreSQL: floor (psycopg, same rows)", pg_floor_rate),
        *(
            (f"PostgreSQL: ordercore, {n} worker process(es)", ours_w.rates.get(str(n)))
            for n in WORKER_COUNTS
        ),
        *(
            (f"PostgreSQL: floor, {n} worker process(es)", floor_w.rates.get(str(n)))
            for n in FLOOR_WORKER_COUNTS
        ),
    )
    for label, r in rows:
        print(
            f"{label:<44} {fmt(r):>10} {fmt(None if r is None else 1000 / r, ',.2f'):>10} "
            f"{fmt(None if r is None else 3 * r):>10}"
        )
    print()

    def verdict(x: float | None, target: float) -> str:
        return "skipped" if x is None else ("met" if x >= target else "NOT met")

    print(
        f"SQLite ratio vs floor (our orders/s / floor's): {fmt(sqlite_ratio, '.3f')}   "
        f"target >= {TARGET_RATIO}: {verdict(sqlite_ratio, TARGET_RATIO)}"
    )
    print(
        f"  the core + the floor's writes, over the floor: {fmt(sqlite_ceiling, '.3f')} (the most a store on "
        f"this core could reach); ordercore over that: {fmt(sqlite_of_ceiling, '.3f')}"
    )
    print(
        f"  processor time in user mode, ms/order: ordercore {sqlite_user_ms:.2f}, floor {floor_user_ms:.2f}, core +"
        f" floor's writes {core_user_ms:.2f}; the core alone {memory_user_ms:.2f} back to back, {core_between_fsyncs:.2f}"
        " between the floor's fsyncs"
    )
    print(
        f"  one fdatasync of a page in the benchmark's folder: {fsync:.3f} ms (median); each transaction"
        f" waits for one: {3 * fsync:.2f} of the floor's {1000 / sqlite_floor_rate:.2f} ms per order"
        if sqlite_floor_rate
        else "  no SQLite floor figure"
    )
    print(
        f"  the core with a sleep of {pause_s * 1000:.2f} ms (the floor's time per transaction, no I/O) after"
        f" each command: {paused_user_ms:.2f} ms/order in user mode, against {plain_user_ms:.2f} back to back"
        f" in the same run ({paused_user_ms / plain_user_ms:.2f}x)"
    )
    print(
        f"PostgreSQL ratio vs floor: {fmt(pg_ratio, '.3f')}   "
        f"target >= {TARGET_RATIO}: {verdict(pg_ratio, TARGET_RATIO)}"
    )
    if pg_cpu is not None:
        print(
            f"  processor time, ms/order: ordercore {pg_cpu[0][0]:.2f} in its process, {pg_cpu[0][1]:.2f} in the rest"
            f" of the machine (the server); floor {pg_cpu[1][0]:.2f} and {pg_cpu[1][1]:.2f}"
        )
    print(
        f"PostgreSQL 1 -> 2 workers: {fmt(ours_w.scaling, '.2f')}x   "
        f"target >= {TARGET_SCALING}x: {verdict(ours_w.scaling, TARGET_SCALING)}"
    )
    print(
        f"  the floor's processes, 1 -> 2: {fmt(floor_w.scaling, '.2f')}x (how far plain commits scale here)"
    )
    if ours_w.busy.get("1") is not None:

        def busy_text(label: str, figures: WorkerFigures) -> str:
            per_order = []
            for n, b in figures.busy.items():
                r, o = figures.rates[n], figures.own[n]
                if b is not None and o is not None and r:
                    per_order.append(
                        f"{n}: {b:.2f} ({1000 * b / r:.2f} ms per order, {1000 * o / r:.2f} of them in the"
                        f" workers, {1000 * (b - o) / r:.2f} elsewhere)"
                    )
            return f"    {label}: " + "; ".join(per_order)

        stolen = max(v or 0.0 for v in (*ours_w.stolen.values(), *floor_w.stolen.values()))
        print(
            f"  processors the machine kept busy by processes ({os.cpu_count()} in all: the workers, the server,"
            f" the rest), and its processor time per order; the host took at most {stolen:.2f}:"
        )
        print(busy_text("ordercore", ours_w))
        print(busy_text("floor", floor_w))
    for writers, (first_s, last_s) in hot.items():
        print(
            f"SQLite, {n_hot:,} orders of one SKU at one node, {writers} writer(s):"
            f" {first_s * 1000:.2f} ms/order over the first tenth, {last_s * 1000:.2f} over the last"
            f" ({last_s / first_s:.2f}x; 1.00x is flat)"
        )

    def r1(x: float | None) -> float | None:
        return None if x is None else round(x, 1)

    def r3(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    print(
        json.dumps(
            {
                "memory_orders_per_s": r1(memory_rate),
                "sqlite_orders_per_s": r1(sqlite_rate),
                "sqlite_floor_orders_per_s": r1(sqlite_floor_rate),
                "sqlite_ratio_vs_floor": r3(sqlite_ratio),
                "sqlite_core_plus_floor_orders_per_s": r1(sqlite_core_rate),
                "sqlite_ceiling_ratio": r3(sqlite_ceiling),
                "sqlite_ratio_vs_core_plus_floor": r3(sqlite_of_ceiling),
                "memory_user_ms_per_order": r3(memory_user_ms),
                "sqlite_user_ms_per_order": r3(sqlite_user_ms),
                "sqlite_floor_user_ms_per_order": r3(floor_user_ms),
                "sqlite_core_plus_floor_user_ms_per_order": r3(core_user_ms),
                "sqlite_core_between_fsyncs_user_ms_per_order": r3(core_between_fsyncs),
                "memory_paused_user_ms_per_order": r3(paused_user_ms),
                "memory_back_to_back_user_ms_per_order": r3(plain_user_ms),
                "pause_ms": r3(pause_s * 1000),
                "sqlite_fsync_ms": r3(fsync),
                "postgres_orders_per_s": r1(pg_rate),
                "postgres_floor_orders_per_s": r1(pg_floor_rate),
                "postgres_ratio_vs_floor": r3(pg_ratio),
                "postgres_client_cpu_ms_per_order": None if pg_cpu is None else r3(pg_cpu[0][0]),
                "postgres_server_cpu_ms_per_order": None if pg_cpu is None else r3(pg_cpu[0][1]),
                "postgres_floor_client_cpu_ms_per_order": None if pg_cpu is None else r3(pg_cpu[1][0]),
                "postgres_floor_server_cpu_ms_per_order": None if pg_cpu is None else r3(pg_cpu[1][1]),
                "postgres_workers": {k: r1(v) for k, v in ours_w.rates.items()},
                "postgres_scaling_1_to_2": r3(ours_w.scaling),
                "postgres_floor_workers": {k: r1(v) for k, v in floor_w.rates.items()},
                "postgres_floor_scaling_1_to_2": r3(floor_w.scaling),
                "postgres_workers_processors_busy": {k: r3(v) for k, v in ours_w.busy.items()},
                "postgres_workers_processors_stolen": {k: r3(v) for k, v in ours_w.stolen.items()},
                "postgres_workers_processors_in_workers": {k: r3(v) for k, v in ours_w.own.items()},
                "postgres_floor_workers_processors_busy": {k: r3(v) for k, v in floor_w.busy.items()},
                "postgres_floor_workers_processors_stolen": {k: r3(v) for k, v in floor_w.stolen.items()},
                "postgres_floor_workers_processors_in_workers": {k: r3(v) for k, v in floor_w.own.items()},
                "processors": os.cpu_count(),
                "sqlite_hot_sku_ms_first": r3(hot[1][0] * 1000),
                "sqlite_hot_sku_ms_last": r3(hot[1][1] * 1000),
                "sqlite_hot_sku_growth": r3(hot[1][1] / hot[1][0]),
                "sqlite_hot_sku_two_writers_growth": r3(hot[2][1] / hot[2][0]),
                "hot_sku_orders": n_hot,
                "orders": n_orders,
                "worker_orders": n_worker_orders,
                "transactions_per_order": 3,
                "quick": args.quick,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
