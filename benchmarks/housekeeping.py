"""Housekeeping: finding the carts nobody checked out, among many open order reservations.

``OrderCore.expire_reservations`` first asks the store for the stock positions holding a soft reservation
(a cart) past its expiry (``LapsedReservations.lapsed_positions``). A store keeps every open reservation
as a row of ``stock_reservations``; most of them are orders' hard reservations, which never lapse. Since
schema 10 each row also holds its expiry in a column indexed over the soft ones, so the question reads the
lapsed rows only.

The database: 10 stock positions (one SKU at 10 nodes), each with one cart lapsed a minute before the
sweep, and ``N`` hard reservations spread over them (200,000; 20,000 with ``--quick``), inserted as rows
the way the store writes them. Both sides answer the same question in one statement on the same
database, and must find the same 10 positions:

* ``*_sweep_ms``: ``lapsed_positions(at, 1000)`` through the store's unit of work (the indexed column).
* ``*_scan_ms``: the baseline, the question asked without the column, as the stores asked it before
  schema 10: every reservation row read, its JSON expiry extracted and compared (on SQLite by
  ``julianday`` with a millisecond to spare, then exactly in Python, as that code did; on PostgreSQL by
  casting it to ``timestamptz``).
* ``*_speedup``: scan time over sweep time.

Figures are medians of 7 calls each, taken in turn. PostgreSQL runs on a fresh schema (dropped afterwards),
analysed after the rows are inserted as autovacuum would; its parts are skipped, with null values, when no
server answers at ``--postgres`` (default ``postgresql://127.0.0.1:5432/test``, or
``ORDERCORE_TEST_POSTGRES_URL``). Timings are reported, never asserted. The last line printed is a JSON
object.

    python benchmarks/housekeeping.py            # 200,000 open order reservations
    python benchmarks/housekeeping.py --quick    # 20,000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import ordercore
from ordercore import ManualClock, ReceiveStock, ReserveStock, SequentialIds, Sku
from ordercore.ports import LapsedReservations
from storage import DEFAULT_POSTGRES, pg_reachable  # the storage benchmark's, beside this one

FULL_ROWS, QUICK_ROWS = 200_000, 20_000
NODES = 10
REPEATS = 7
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SWEEP_AT = AT + timedelta(minutes=5)

Found = list[tuple[str, Sku]]


def seed(app: ordercore.OrderCore) -> None:
    """The 10 positions, each with one cart that lapses a minute after AT."""
    for i in range(NODES):
        app.handle(ReceiveStock(node_id=f"WH-{i}", sku="MUG", quantity=10**9, reason="opening stock"))
        app.handle(
            ReserveStock(
                node_id=f"WH-{i}",
                sku="MUG",
                key=f"CART-{i}",
                quantity=1,
                reference=f"CART-{i}",
                expires_at=AT + timedelta(minutes=1),
            )
        )


def hard_rows(n: int) -> list[tuple[str, str, str, str]]:
    """``n`` orders' hard reservations as rows (node, SKU, key, JSON body), spread over the positions."""
    return [
        (
            f"WH-{i % NODES}",
            "MUG",
            f"O-{i:07d}/1/WH-{i % NODES}/4",
            json.dumps(
                {
                    "created_at": AT.isoformat(),
                    "expires_at": None,
                    "hard": True,
                    "key": f"O-{i:07d}/1/WH-{i % NODES}/4",
                    "quantity": 1,
                    "reference": f"O-{i:07d}",
                }
            ),
        )
        for i in range(n)
    ]


def sweep(app: ordercore.OrderCore) -> Found:
    with app.store.unit_of_work() as uow:
        assert isinstance(uow, LapsedReservations)
        return uow.lapsed_positions(SWEEP_AT, 1000)


def median_ms(sides: dict[str, Callable[[], Found]]) -> dict[str, float]:
    """Median milliseconds of each side over REPEATS calls taken in turn; every call must find the 10."""
    spent: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(REPEATS):
        for name, side in sides.items():
            t0 = perf_counter()
            found = side()
            spent[name].append((perf_counter() - t0) * 1000)
            if sorted(found, key=lambda k: (k[0], k[1].value)) != [
                (f"WH-{i}", Sku("MUG")) for i in range(NODES)
            ]:
                raise SystemExit(f"{name} found {found}, expected the 10 positions")
    return {name: statistics.median(times) for name, times in spent.items()}


# -- SQLite ---------------------------------------------------------------------------------------------
def sqlite_scan(path: str) -> Found:
    """The question without the column: every row's JSON expiry, as the store asked it before schema 10."""
    found: list[tuple[str, str]] = []
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT node_id, sku, key, json_extract(body, '$.expires_at') FROM stock_reservations"
            " WHERE json_extract(body, '$.expires_at') IS NOT NULL"
            " AND julianday(json_extract(body, '$.expires_at')) <= julianday(?) + 1.0 / 86400000"
            " ORDER BY node_id, sku",
            (SWEEP_AT.isoformat(),),
        )
        for node_id, sku, _, expires_at in rows:
            if found and found[-1] == (node_id, sku):
                continue
            if datetime.fromisoformat(expires_at) <= SWEEP_AT and len(found) < 1000:
                found.append((node_id, sku))
    return [(node_id, Sku(sku)) for node_id, sku in found]


def bench_sqlite(n: int, folder: str) -> dict[str, float]:
    path = os.path.join(folder, "stock.db")
    app = ordercore.bootstrap(f"sqlite:///{path}", clock=ManualClock(AT), ids=SequentialIds())
    try:
        seed(app)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executemany(
                "INSERT INTO stock_reservations (node_id, sku, key, body) VALUES (?, ?, ?, ?)", hard_rows(n)
            )
        sweep(app)  # the store's first unit of work opens its connection: not timed
        return median_ms({"sweep": lambda: sweep(app), "scan": lambda: sqlite_scan(path)})
    finally:
        app.close()


# -- PostgreSQL -----------------------------------------------------------------------------------------
def bench_postgres(n: int, base: str) -> dict[str, float]:
    import psycopg
    from psycopg import sql

    schema = f"ordercore_bench_{uuid.uuid4().hex[:12]}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    app = ordercore.bootstrap(url, clock=ManualClock(AT), ids=SequentialIds())
    admin: Any = psycopg.connect(base, autocommit=True)
    try:
        seed(app)
        admin.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        with admin.cursor() as cur, admin.transaction():
            cur.executemany(
                "INSERT INTO stock_reservations (node_id, sku, key, body) VALUES (%s, %s, %s, %s::jsonb)",
                hard_rows(n),
            )
        admin.execute("ANALYZE stock_reservations")

        def scan() -> Found:
            rows = admin.execute(
                "SELECT DISTINCT node_id, sku FROM stock_reservations"
                " WHERE body ->> 'expires_at' IS NOT NULL AND (body ->> 'expires_at')::timestamptz <= %s"
                " ORDER BY node_id, sku LIMIT %s",
                (SWEEP_AT, 1000),
            ).fetchall()
            return [(node_id, Sku(sku)) for node_id, sku in rows]

        sweep(app)
        return median_ms({"sweep": lambda: sweep(app), "scan": scan})
    finally:
        app.close()
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} open order reservations")
    parser.add_argument("--postgres", default=os.environ.get("ORDERCORE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    args = parser.parse_args(argv)
    n = QUICK_ROWS if args.quick else FULL_ROWS
    print(f"sqlite ({n:,} open order reservations, {NODES} lapsed carts)...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        lite = bench_sqlite(n, folder)
    why_not = pg_reachable(args.postgres)
    if why_not is None:
        print("postgres...", file=sys.stderr)
        pg: dict[str, float] | None = bench_postgres(n, args.postgres)
    else:
        print(f"postgres skipped: {why_not}", file=sys.stderr)
        pg = None

    print(f"\nFinding {NODES} lapsed carts among {n:,} open order reservations (median of {REPEATS}):\n")
    print(f"{'':40} {'sweep (index) ms':>17} {'scan (every row) ms':>20} {'speedup':>8}")
    print(
        f"{'SQLite file':40} {lite['sweep']:17.2f} {lite['scan']:20.2f} {lite['scan'] / lite['sweep']:7.0f}x"
    )
    if pg is not None:
        print(f"{'PostgreSQL':40} {pg['sweep']:17.2f} {pg['scan']:20.2f} {pg['scan'] / pg['sweep']:7.0f}x")
    else:
        print(f"{'PostgreSQL':40} skipped: {why_not}")
    figures = {
        "open_reservations": n,
        "lapsed_carts": NODES,
        "sqlite_sweep_ms": round(lite["sweep"], 3),
        "sqlite_scan_ms": round(lite["scan"], 3),
        "sqlite_speedup": round(lite["scan"] / lite["sweep"], 1),
        "postgres_sweep_ms": None if pg is None else round(pg["sweep"], 3),
        "postgres_scan_ms": None if pg is None else round(pg["scan"], 3),
        "postgres_speedup": None if pg is None else round(pg["scan"] / pg["sweep"], 1),
        "quick": args.quick,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
