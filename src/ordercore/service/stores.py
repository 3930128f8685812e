"""Opening a store by URL. Store adapters register under the ``ordercore.stores`` entry-point group, keyed
by URL scheme (``memory``, ``sqlite``, ``postgresql``...), so a third-party store plugs in the same way ours
do and the core never names a driver.

A store with a versioned schema refuses, when opened, a database at an older version unless it is opened with
``migrate=True`` (which applies the pending steps); its opener takes that keyword. An opener that takes no
``migrate`` keyword has no schema to migrate (the in-memory store), so the flag is not passed to it."""

from __future__ import annotations

import inspect
from typing import Protocol

from ordercore.errors import UnknownStore
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.ports import Store

__all__ = ["ENTRY_POINT_GROUP", "StoreOpener", "available_schemes", "open_store"]

ENTRY_POINT_GROUP = "ordercore.stores"


class StoreOpener(Protocol):
    """What a store entry point must be: ``opener(url, lifecycle=...) -> Store``; one for a store with a
    versioned schema also takes ``migrate: bool`` (see the module's docs)."""

    def __call__(self, url: str, *, lifecycle: Lifecycle) -> Store: ...


def available_schemes() -> list[str]:
    from importlib.metadata import entry_points  # read only when a store is opened

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def _takes_migrate(opener: StoreOpener) -> bool:
    try:
        parameters = inspect.signature(opener).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass it, as to any other opener
        return True
    return any(p.name == "migrate" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE, migrate: bool = False) -> Store:
    """Open the store that ``url`` names (``memory://``, ``sqlite:///orders.db``...). A database at an older
    schema version is refused (``StoreUnavailable``) unless ``migrate``, which upgrades it first."""
    if not isinstance(url, str) or "://" not in url:
        raise UnknownStore(f"store URL {url!r} has no scheme (expected e.g. 'memory://')")
    from importlib.metadata import entry_points  # read only when a store is opened

    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    found = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    if not found:
        raise UnknownStore(
            f"no store is registered for {scheme!r}; available: {', '.join(available_schemes()) or 'none'}"
        )
    opener: StoreOpener = next(iter(found)).load()
    if migrate and _takes_migrate(opener):
        return opener(url, lifecycle=lifecycle, migrate=True)  # type: ignore[call-arg]
    return opener(url, lifecycle=lifecycle)
