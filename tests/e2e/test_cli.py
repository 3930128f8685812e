"""The ``ordercore`` command and its demo, run as a user would."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ordercore
from ordercore import OrderStatus
from ordercore_adapters.cli import main
from ordercore_adapters.cli.demo import run_demo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordercore", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_prints_a_timeline_for_every_order() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("store: sqlite:///")  # the embedded store by default
    for heading in (
        "(web, web) -> completed",
        "(edi, edi) -> partially_returned",
        "(marketplace, marketplace-de) -> rejected",
        "(pos, pos-berlin-1) -> cancelled",
    ):
        assert heading in out
    assert "HoldApplied" in out and "CREDIT_LIMIT" in out and "HoldReleased" in out
    assert "[illegal_transition]" in out and "currency_mismatch" in out
    assert "grand total 52.55 EUR" in out
    assert "38 events published through the outbox" in out
    # the sourcing part: a plan with its explanation, a short pick and a node going offline
    assert "latest plan by cost_optimal" in out and "(proved optimal)" in out
    assert "not WH-MUNICH: dominated" in out and "[short_pick]" in out and "not WH-HAMBURG: offline" in out
    # the rules part: an order held by a rule, the explanation, its release by a person
    assert "RULED-000001 -> on_hold, holds: review_large_new_customer" in out
    assert "big-first-order [fraud] MATCH -> hold review_large_new_customer" in out
    assert "customer.is_new = true, order.total = 298.00 EUR" in out
    assert "released by alice -> accepted" in out and "by user:alice" in out
    assert "[credit_limit] open balance 1200.00 EUR + order 447.00 EUR exceeds the credit limit" in out
    assert "(line 14, column 15): order has no field 'totl'" in out


def test_the_console_script_is_installed() -> None:
    script = shutil.which("ordercore", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"ordercore {ordercore.__version__}"


def test_demo_orders_replay_and_end_where_the_script_says() -> None:
    orders = run_demo("memory://", out=io.StringIO())
    assert orders["web"].status == OrderStatus.COMPLETED
    assert orders["edi"].line("1").qty.returned == 1
    sourced = orders["sourced"]
    assert sourced.status == OrderStatus.ALLOCATED
    assert sorted({a.node_id for a in sourced.allocations}) == ["STORE-MITTE", "WH-BERLIN", "WH-MUNICH"]
    for order in orders.values():
        assert ordercore.Order.replay(order.history) == order


def test_an_unknown_store_is_a_clear_error(capsys: object) -> None:
    assert main(["demo", "--store", "nosuch://x"]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "unknown_store" in err and "available: memory" in err


@pytest.mark.parametrize("command", ["demo", "migrate"])
def test_a_store_url_is_echoed_without_its_password(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--store", "postgresql://shop:s3cret@127.0.0.1:1/x?connect_timeout=1"]) == 1
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err
    assert "postgresql://shop:***@127.0.0.1:1/x" in captured.out


def test_a_command_is_required() -> None:
    result = run()
    assert result.returncode == 2 and "demo" in result.stderr


def test_demo_leaves_its_orders_in_the_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = run("demo", "--store", url)
    assert result.returncode == 0, result.stderr
    app = ordercore.bootstrap(url)
    with app:
        ids = app.list_orders()
        assert len(ids) == 7
        statuses = sorted(app.get_order(i).status.name for i in ids)
        stock = app.stock("WH-BERLIN", "MUG-BLUE")
    assert statuses == [
        "accepted",
        "allocated",
        "cancelled",
        "completed",
        "on_hold",
        "partially_returned",
        "rejected",
    ]
    assert stock is not None and stock.on_hand == 20  # the stock and its reservations are in the file too


def test_demo_runs_in_memory_too() -> None:
    result = run("demo", "--store", "memory://")
    assert result.returncode == 0, result.stderr
    assert "store: memory://" in result.stdout
