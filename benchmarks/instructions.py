"""Instructions per order: the storage benchmark's work counted in processor instructions, which do not
swing with the machine as its timings do.

Each figure runs ``benchmarks/storage.py``'s place -> accept -> source loop (its plan, its network, its
warm-up) in a process of its own under valgrind's cachegrind (``--cache-sim=no``: instructions only), once
for ``A`` orders and once for ``B`` orders after the same warm-up, and reports ``(Ir(B) - Ir(A)) / (B - A)``:
what one more order costs, without the start-up, the imports and the warm-up the two runs share. Only this
process is counted: on PostgreSQL that is the worker's side, not the server's.

* ``memory_instructions_per_order``: the ``memory://`` store.
* ``sqlite_instructions_per_order``: a SQLite file in a temporary folder, seeded as the storage benchmark
  seeds it (the fsyncs cost time, not instructions).
* ``sqlite_floor_instructions_per_order``: the storage benchmark's floor on a SQLite file: the same rows
  written with the bare driver (the recorded transactions replayed), against a run that records them and
  replays none.
* ``postgres_instructions_per_order``: a fresh PostgreSQL schema (dropped afterwards); null when no server
  answers at ``--postgres``.

With ``--quick`` the floor is not counted (null): it is the same from run to run, and leaving it out keeps
the quick run under a minute.

Needs valgrind (``apt install valgrind``); without it every figure is null and the table says why. Each
run takes 10 to 20 seconds under valgrind, most of it the imports and the warm-up; the eight run side by
side, as many at once as there are processors. The last line printed is a JSON object.

    python benchmarks/instructions.py            # 100 and 300 orders
    python benchmarks/instructions.py --quick    # 20 and 60
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage  # the storage benchmark's data and loop

FULL = (100, 300)
QUICK = (20, 60)
KINDS = ("memory", "sqlite", "sqlite_floor", "postgres")
#: orders run after the warm-up and before the counted ones, in both runs of a figure (none with --quick)
WARM = 30
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


# -- one counted run (in the child process) -------------------------------------------------------------------
def run(kind: str, n: int, postgres: str, baseline: bool, warm: int) -> None:
    """``n`` orders of the storage plan on ``kind``, after its warm-up and ``warm`` orders more
    (``baseline``: the warm-up alone, for the floor, whose recorded transactions are then not
    replayed)."""
    plan = storage.make_plan(n)
    if kind == "memory":
        app = storage.memory_app()
        storage.run_orders(app, storage.make_plan(warm, storage.SEED - 2))
        gc.disable()
        storage.run_orders(app, plan)
        return
    seed, order_txs = storage.record(plan if kind == "sqlite_floor" else plan[:1], 1)
    if kind == "postgres":
        schema = f"bench_instructions_{uuid.uuid4().hex[:8]}"
        storage.pg_prepare(postgres, schema, storage.pg_statements(seed))
        try:
            _count(storage.new_app(storage.pg_url(postgres, schema)), plan, warm)
        finally:
            storage.pg_drop(postgres, [schema])
        return
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, "instructions.db")
        storage.ordercore.bootstrap(f"sqlite:///{path}").close()
        with storage.sqlite_floor_connect(path) as conn:
            storage.sqlite_replay(conn, seed)
        if kind == "sqlite_floor":
            gc.disable()
            if not baseline:
                storage.sqlite_replay(conn, [tx for txs in order_txs for tx in txs])
            conn.close()
            return
        conn.close()
        _count(storage.new_app(f"sqlite:///{path}"), plan, warm)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _count(app: storage.ordercore.OrderCore, plan: storage.Plan, warm: int) -> None:
    """The storage benchmark's warm-up, ``warm`` orders more, then ``plan`` (the orders counted)."""
    storage.warm_up(app)
    storage.run_orders(app, storage.make_plan(warm, storage.SEED - 2))
    gc.disable()
    storage.run_orders(app, plan)
    app.close()


# -- counting (in the parent) ---------------------------------------------------------------------------------
def instructions(kind: str, n: int, postgres: str, warm: int, *, baseline: bool = False) -> int:
    """The instructions a child process running :func:`run` executed, as cachegrind counts them."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        kind,
        str(n),
        "--postgres",
        postgres,
        "--warm",
        str(warm),
    ]
    if baseline:
        command.append("--baseline")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{kind}, {n} orders: valgrind exited {done.returncode}: {done.stderr[-600:]}")
    return int(found.group(1).replace(",", ""))


def per_order(kinds: Sequence[str], counts: tuple[int, int], postgres: str, warm: int) -> dict[str, float]:
    """Instructions per order of each of ``kinds``, their runs spread over the machine's processors
    (valgrind runs a process on one; the counts do not depend on what else runs)."""
    a, b = counts
    runs: list[tuple[str, int, bool]] = []
    for kind in sorted(kinds, key=KINDS[::-1].index):  # the longest first: the last to end is a short one
        # the floor: the same recording in both runs, B orders replayed against none
        runs += (
            [(kind, b, False), (kind, b, True)]
            if kind == "sqlite_floor"
            else [(kind, b, False), (kind, a, False)]
        )
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        counted = list(pool.map(lambda r: instructions(r[0], r[1], postgres, warm, baseline=r[2]), runs))
    done = dict(zip(runs, counted, strict=True))
    return {
        kind: (done[(kind, b, False)] - done[(kind, b, True)]) / b
        if kind == "sqlite_floor"
        else (done[(kind, b, False)] - done[(kind, a, False)]) / (b - a)
        for kind in kinds
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} and {QUICK[1]} orders")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("ORDERCORE_TEST_POSTGRES_URL", storage.DEFAULT_POSTGRES),
        help="PostgreSQL server and database (a fresh schema is created and dropped)",
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=WARM, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = args.postgres.split("?schema=")[0]
    if args.child:
        run(args.child[0], int(args.child[1]), base, args.baseline, args.warm)
        return 0
    counts = QUICK if args.quick else FULL
    figures: dict[str, float | None] = dict.fromkeys(KINDS)
    why: dict[str, str] = {}
    if shutil.which("valgrind") is None:
        why = dict.fromkeys(KINDS, "valgrind is not installed")
    if args.quick:  # a minute at most: the floor's reference figure is left to the full run
        why.setdefault("sqlite_floor", "left to the full run (--quick)")
    if "postgres" not in why:
        down = storage.pg_reachable(base)
        if down is not None:
            why["postgres"] = down
    kinds = [kind for kind in KINDS if kind not in why]
    print(f"counting {', '.join(kinds) or 'nothing'}...", file=sys.stderr, flush=True)
    figures.update(per_order(kinds, counts, base, 0 if args.quick else WARM))

    print(
        f"Instructions per order (cachegrind; Ir({counts[1]}) - Ir({counts[0]}) orders of the storage"
        " benchmark's place -> accept -> source, over the difference)\n"
    )
    print(f"{'':30s}{'instructions':>16s}")
    for kind in KINDS:
        value = figures[kind]
        shown = f"{value:16,.0f}" if value is not None else f"  not run: {why.get(kind, '')}"
        print(f"{kind:30s}{shown}")
    print(
        json.dumps(
            {
                **{f"{kind}_instructions_per_order": figures[kind] for kind in KINDS},
                "orders": list(counts),
                "quick": args.quick,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
