"""``ordercore migrate``, run as a user would, on a SQLite database left at an older schema version."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from ordercore import StoreUnavailable
from ordercore.values import Sku
from ordercore_adapters.sqlite import SCHEMA_VERSION, open_store
from tests.integration.test_sqlite_store import level, schema_1_database


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordercore", *args], capture_output=True, text=True, timeout=120
    )


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as raw:
        version: int = raw.execute("PRAGMA user_version").fetchone()[0]
        return version


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A schema 1 database holding one stock level."""
    path = tmp_path / "orders.db"
    schema_1_database(path, [level("WH-1", "SKU-1", 7)])
    return path


def test_migrate_applies_the_pending_steps_and_the_store_then_opens(old: Path) -> None:
    url = f"sqlite:///{old}"
    with pytest.raises(StoreUnavailable, match="ordercore migrate --store"):
        open_store(url)
    result = run("migrate", "--store", url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "current schema version: 1" in out and f"target schema version: {SCHEMA_VERSION}" in out
    for line in (
        "2: stock ledger",
        "3: node capacity",
        "4: idempotency keys",
        "5: read models",
        "6: recent orders",
    ):
        assert line in out
    assert "1: orders" not in out
    assert f"migrated from schema version 1 to {SCHEMA_VERSION}" in out
    assert user_version(old) == SCHEMA_VERSION
    store = open_store(url)
    try:
        with store.unit_of_work() as uow:
            position = uow.inventory.get("WH-1", Sku("SKU-1"))
        assert position is not None and position.on_hand == 7
    finally:
        store.close()
    again = run("migrate", "--store", url)
    assert again.returncode == 0, again.stderr
    assert "nothing to migrate" in again.stdout


def test_a_dry_run_lists_the_steps_and_changes_nothing(old: Path) -> None:
    result = run("migrate", "--store", f"sqlite:///{old}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "current schema version: 1" in result.stdout
    assert "2: stock ledger" in result.stdout and "5: read models" in result.stdout
    assert "dry run: nothing applied" in result.stdout
    assert user_version(old) == 1
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{old}")


def test_a_failed_migration_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    schema_1_database(path, [level("WH-1", "SKU-1", -2)])  # a level that cannot be upgraded
    result = run("migrate", "--store", f"sqlite:///{path}")
    assert result.returncode == 1
    assert result.stderr.startswith("error [store_unavailable]: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot be upgraded" in result.stderr
    assert user_version(path) == 1


def test_a_newer_database_is_refused_with_exit_code_1(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    open_store(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        raw.commit()
    result = run("migrate", "--store", f"sqlite:///{path}")
    assert result.returncode == 1
    assert f"schema version {SCHEMA_VERSION + 1}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_memory_store_has_nothing_to_migrate() -> None:
    result = run("migrate", "--store", "memory://")
    assert result.returncode == 0, result.stderr
    assert "nothing to migrate" in result.stdout


def test_an_unknown_scheme_is_refused_with_exit_code_1() -> None:
    result = run("migrate", "--store", "nosuch://x")
    assert result.returncode == 1
    assert result.stderr.startswith("error [")
