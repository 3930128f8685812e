"""``ordercore migrate``: bring a store's schema to the version this release expects.

A store refuses, when opened, a database at an older schema version; this command applies the pending
steps, in one transaction, and says which (``--dry-run``: only says which, changing nothing).
"""

from __future__ import annotations

from typing import Any, TextIO

from ordercore.errors import UnknownStore
from ordercore_adapters._urls import masked

__all__ = ["run_migrate"]

_NO_SCHEMA = ("memory",)


def _migrate(url: str, dry_run: bool) -> Any:
    """The adapter's :class:`Migration` for ``url`` (None for a store without a schema)."""
    if "://" not in url:
        raise UnknownStore(f"store URL {masked(url)!r} has no scheme (expected e.g. 'sqlite:///orders.db')")
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme in _NO_SCHEMA:
        return None
    if scheme == "sqlite":
        from ordercore_adapters.sqlite import migrate

        return migrate(url, dry_run=dry_run)
    if scheme in ("postgresql", "postgres"):
        try:
            from ordercore_adapters.postgres import migrate as migrate_postgres
        except ImportError as e:
            raise UnknownStore(
                f"the postgresql store needs psycopg: pip install 'ordercore[postgres]' ({e})"
            ) from e
        return migrate_postgres(url, dry_run=dry_run)
    raise UnknownStore(
        f"ordercore migrate knows the schemas of sqlite:// and postgresql:// stores, not {scheme}://"
    )


def run_migrate(url: str, *, dry_run: bool, out: TextIO) -> None:
    """Migrate (or, with ``dry_run``, plan migrating) the store ``url`` names, reporting to ``out``.
    Errors (:class:`~ordercore.OrderCoreError`) are left to the caller."""
    migration = _migrate(url, dry_run)
    if migration is None:
        print(f"{masked(url)} has no schema: nothing to migrate", file=out)
        return
    found, target, steps = migration.found, migration.target, migration.steps
    if found == 0:
        verb = "would be created" if dry_run else "created"
        print(f"new database: {verb} at schema version {target}; nothing to migrate", file=out)
        return
    print(f"current schema version: {found}", file=out)
    print(f"target schema version: {target}", file=out)
    if not steps:
        print("up to date: nothing to migrate", file=out)
        return
    print("steps to apply:" if dry_run else "applying:", file=out)
    for version, description in steps:
        print(f"  {version}: {description}", file=out)
    if dry_run:
        print(f"dry run: nothing applied (the store stays at schema version {found})", file=out)
    else:
        print(f"migrated from schema version {found} to {target}", file=out)
