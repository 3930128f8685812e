"""The ``ordercore`` command."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import ordercore
from ordercore_adapters._urls import masked
from ordercore_adapters.cli.demo import run_demo
from ordercore_adapters.cli.migrate import run_migrate
from ordercore_adapters.sqlite import file_url

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ordercore", description="ordercore: an embeddable order management core"
    )
    parser.add_argument("--version", action="version", version=f"ordercore {ordercore.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a scripted lifecycle of a few orders and print their timelines")
    demo.add_argument(
        "--store",
        default=None,
        help="store URL, e.g. memory:// or sqlite:///orders.db (default: a new SQLite file in a temporary folder)",
    )
    migrate = sub.add_parser(
        "migrate", help="bring a store's schema to the current version, applying the pending steps"
    )
    migrate.add_argument(
        "--store", required=True, help="store URL, e.g. sqlite:///orders.db or postgresql://user@host/db"
    )
    migrate.add_argument("--dry-run", action="store_true", help="only list the steps; change nothing")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        print(f"store: {masked(args.store)}")
        try:
            run_migrate(args.store, dry_run=args.dry_run, out=sys.stdout)
        except ordercore.OrderCoreError as e:
            message = " ".join(str(e).split())
            print(f"error [{e.code}]: {message}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        store = args.store or file_url(Path(tempfile.mkdtemp(prefix="ordercore-demo-")) / "orders.db")
        print(f"store: {masked(store)}")
        try:
            run_demo(store, out=sys.stdout)
        except BrokenPipeError:  # the reader went away (``| head``): not an error of the demo
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except ordercore.OrderCoreError as e:
            print(f"error [{e.code}]: {e}", file=sys.stderr)
            return 1
    return 0
