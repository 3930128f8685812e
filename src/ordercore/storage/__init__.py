"""What every store adapter's repositories share: staging changes inside a unit of work.

A unit of work hands out orders, stock positions and node days that the caller may change, and records
idempotency keys; nothing reaches the store before ``commit``. These bases keep the staged objects, and a store fills in how to read what is
stored (``_load``...) and how to write at commit. The in-memory, SQLite and PostgreSQL stores all build on
them; so can an integrator's own store.
"""

from __future__ import annotations

from ordercore.storage._copies import (
    CATCH_UP_ENTRIES,
    NODE_STATES,
    Behind,
    Bounded,
    Stale,
    VersionedCopies,
    committed_copy_of_order,
    committed_copy_of_position,
    decode_node_day,
    decode_node_states,
    decode_position,
    decode_positions,
    decode_stored,
    keep_committed,
    node_states_at,
    node_states_copies,
    positions_at,
    reservation_changes,
    upgrade_stock_level,
)
from ordercore.storage._json import StoredJson, find_in_document
from ordercore.storage._read_models import (
    MAX_LIMIT,
    backorder_rows,
    check_limit,
    check_recent_orders_query,
    hold_rows,
    newest_first,
    order_digest,
    status_since,
    summarise_backorders,
)
from ordercore.storage._staging import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    StagedCapacity,
    StagedIdempotency,
    StagedNodes,
    StagedOrders,
    StagedOutbox,
    StagedStock,
    StagedUnitOfWork,
    check_idempotency_key,
    check_list_ids,
    check_purge,
    key_taken,
    node_states_changed,
)

__all__ = [
    "CATCH_UP_ENTRIES",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "NODE_STATES",
    "StagedCapacity",
    "StagedIdempotency",
    "StagedNodes",
    "StagedOrders",
    "StagedOutbox",
    "StagedStock",
    "Behind",
    "MAX_LIMIT",
    "Bounded",
    "StagedUnitOfWork",
    "Stale",
    "StoredJson",
    "VersionedCopies",
    "backorder_rows",
    "check_idempotency_key",
    "check_limit",
    "find_in_document",
    "check_list_ids",
    "check_purge",
    "committed_copy_of_order",
    "committed_copy_of_position",
    "decode_position",
    "decode_node_day",
    "decode_node_states",
    "decode_stored",
    "decode_positions",
    "check_recent_orders_query",
    "hold_rows",
    "keep_committed",
    "key_taken",
    "node_states_changed",
    "node_states_at",
    "node_states_copies",
    "newest_first",
    "order_digest",
    "positions_at",
    "reservation_changes",
    "status_since",
    "summarise_backorders",
    "upgrade_stock_level",
]
