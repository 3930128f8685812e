"""Opening a store by URL. Store adapters register under the ``ordercore.stores`` entry-point group, keyed
by URL scheme (``memory``, ``sqlite``, ``postgresql``...), so a third-party store plugs in the same way ours
do and the core never names a driver."""

from __future__ import annotations

from typing import Protocol

from ordercore.errors import UnknownStore
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.ports import Store

__all__ = ["ENTRY_POINT_GROUP", "StoreOpener", "available_schemes", "open_store"]

ENTRY_POINT_GROUP = "ordercore.stores"


class StoreOpener(Protocol):
    """What a store entry point must be: ``opener(url, lifecycle=...) -> Store``."""

    def __call__(self, url: str, *, lifecycle: Lifecycle) -> Store: ...


def available_schemes() -> list[str]:
    from importlib.metadata import entry_points  # read only when a store is opened

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> Store:
    """Open the store that ``url`` names (``memory://``, ``sqlite:///orders.db``...)."""
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
    return opener(url, lifecycle=lifecycle)
