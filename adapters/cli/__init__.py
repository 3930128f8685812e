"""The ``ordercore`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import ordercore
from ordercore_adapters.cli.demo import run_demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ordercore", description="ordercore: an embeddable order management core"
    )
    parser.add_argument("--version", action="version", version=f"ordercore {ordercore.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a scripted lifecycle of a few orders and print their timelines")
    demo.add_argument("--store", default="memory://", help="store URL (default: memory://)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            run_demo(args.store, out=sys.stdout)
        except ordercore.OrderCoreError as e:
            print(f"error [{e.code}]: {e}", file=sys.stderr)
            return 1
    return 0
