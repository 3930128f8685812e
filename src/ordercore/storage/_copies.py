"""What a store keeps of what it read or wrote: bounded caches of decoded copies by version, bringing a
kept stock position up to date from the ledger entries it lacks, and decoding stored rows."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import cattrs

from ordercore.errors import InvalidValue, OrderCoreError, StoreUnavailable
from ordercore.inventory import EntryKind, LedgerEntry, NodeDay, NodeStates, NodeStatus, StockPosition
from ordercore.inventory.held import Reservations
from ordercore.inventory.ledger import RESERVATION_KINDS, Reservation
from ordercore.order import Order
from ordercore.serialization import from_json
from ordercore.storage._staging import StagedNodes
from ordercore.values import Actor, OrderId, Sku

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def decode_node_states(
    rows: Sequence[Sequence[Any]], where: str, time: Callable[[Any], datetime]
) -> NodeStates:
    """The node states a store holds, from ``rows`` of (version, node id, online, changed at, actor kind,
    actor id, reason), read in one statement: the version with every node's row (a row whose node id is
    None when no node was ever switched); ``time`` reads a stored time. A row that does not read back is
    a store failure."""
    version = rows[0][0] if rows else 0
    statuses = []
    for _, node_id, online, changed_at, actor_kind, actor_id, reason in rows:
        if node_id is None:
            continue
        try:
            statuses.append(
                NodeStatus(str(node_id), bool(online), time(changed_at), Actor(actor_kind, actor_id), reason)
            )
        except (OrderCoreError, TypeError, ValueError) as e:
            raise StoreUnavailable(f"{where}: the state of node {node_id} cannot be read: {e}") from e
    try:
        return NodeStates.of(version, statuses)
    except OrderCoreError as e:
        raise StoreUnavailable(f"{where}: the node states cannot be read: {e}") from e


def node_states_at(
    cache: VersionedCopies[str, NodeStates],
    version: int,
    read_joined: Callable[[], Sequence[Sequence[Any]]],
    where: str,
    time: Callable[[Any], datetime],
) -> NodeStates:
    """The node states at ``version`` (read from the store just now): the copy ``cache`` keeps of that
    version, or else those ``read_joined`` reads (the version with every node's row, in one statement,
    for :func:`decode_node_states`), kept from then on."""
    kept = cache.get(NODE_STATES, version)
    if kept is not None:
        return kept
    states = decode_node_states(read_joined(), where, time)
    cache.put(NODE_STATES, states.version, states)
    return states


#: the one key under which a store keeps its node states in :func:`node_states_copies`
NODE_STATES = "node states"


def node_states_copies() -> VersionedCopies[str, NodeStates]:
    """Where a store keeps the node states it last read or wrote, by version, under :data:`NODE_STATES`
    (they are immutable: the copy handed out is the one kept)."""
    return VersionedCopies(_unchanged, 1)


def _unchanged(states: NodeStates) -> NodeStates:
    return states


class Bounded(Generic[K, V]):
    """A map of at most ``limit`` entries (none for 0) that drops the oldest first, by when each was last
    put: what a store keeps for as long as its process runs (decoded copies, encoded texts). Getting and
    putting cost the same however many entries it holds and however long it has been full. (A plain
    ``dict`` that drops its first key to make room does not: each key it drops leaves a hole at its front
    that finding the next first key walks past, until the dict is rebuilt, so a full one grows slower
    with its size.) Safe to use from several threads."""

    __slots__ = ("_entries", "_limit", "_lock")

    def __init__(self, limit: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._limit = max(limit, 0)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key`` as the newest entry, dropping the oldest beyond the limit."""
        if not self._limit:
            return
        with self._lock:
            entries = self._entries
            entries[key] = value
            entries.move_to_end(key)
            while len(entries) > self._limit:
                entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class VersionedCopies(Generic[K, T]):
    """Decoded copies of stored aggregates (orders, stock positions), each with the version it is stored
    at, kept by a store so that a unit of work decodes a row only when it changed since it was last read
    or written in this process.

    A store still reads the version of every row it hands out (outside the commit's transaction, as it
    reads bodies) and checks it again when it writes, so a copy kept here is handed out only while the row
    is at that version. This is sound because an aggregate's version grows with every change that is
    stored (an order's events, a position's ledger entries), so one version always stands for one body.
    ``copy`` makes an independent object (``clone``): callers get their own, and what they change never
    reaches the copy kept here (nor what a caller gave away to :meth:`put`). At most ``limit`` entries are kept; the oldest go first."""

    def __init__(self, copy: Callable[[T], T], limit: int) -> None:
        self._copy = copy
        self._entries: Bounded[K, tuple[int, T]] = Bounded(limit)

    def version(self, key: K) -> int | None:
        """The version of the copy kept for ``key``, if any."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def get(self, key: K, version: int) -> T | None:
        """A copy of what ``key`` holds at ``version``; None when no copy of that version is kept."""
        kept = self.peek(key, version)
        return None if kept is None else self._copy(kept)

    def peek(self, key: K, version: int) -> T | None:
        """What ``key`` holds at ``version``: the very copy kept here, **to be read only** (it is shared
        with every caller of this method); None when no copy of that version is kept."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        return entry[1]

    def read_through(
        self, key: K, fetch: Callable[[int], tuple[int, str | None] | None]
    ) -> tuple[T | None, str | None]:
        """Read ``key``'s row, travelling its body only when no copy of its version is kept here.

        ``fetch(v)`` runs the store's query for the row's version and, unless the row is at version ``v``,
        its body (``v = -1``: always the body); it returns None when there is no row. The answer is
        ``(copy, None)`` when the kept copy is current, ``(None, body)`` when the body must be decoded,
        and ``(None, None)`` when there is no row."""
        kept = self.version(key)
        row = fetch(-1 if kept is None else kept)
        if row is None:
            return None, None
        version, body = row
        if body is None:
            copy = self.get(key, version)
            if copy is not None:
                return copy, None
            row = fetch(-1)  # the copy went meanwhile (the cache is bounded): read the body after all
            if row is None:
                return None, None
            body = row[1]
        return None, body

    def put(self, key: K, version: int, value: T) -> None:
        """Keep ``value``, which ``key`` holds at ``version`` (as read, or as just committed). ``value`` is
        the cache's from now on: pass a copy of an object still in use."""
        self._entries.put(key, (version, value))

    def clear(self) -> None:
        self._entries.clear()


def committed_copy_of_order(order: Order) -> Order:
    """A copy of ``order`` as a store holds it once committed: its events are no longer new."""
    copy = order.clone()
    copy.persisted_version = copy.version
    return copy


def committed_copy_of_position(position: StockPosition) -> StockPosition:
    """A copy of ``position`` as a store holds it once committed: its ledger entries are no longer new."""
    copy = position.clone()
    copy.mark_persisted()
    return copy


def keep_committed(
    orders: VersionedCopies[OrderId, Order],
    stock: VersionedCopies[tuple[str, str], StockPosition],
    node_states: VersionedCopies[str, NodeStates],
    changed: Sequence[Order],
    positions: Sequence[StockPosition],
    nodes: StagedNodes,
) -> None:
    """What a store that keeps decoded copies does once a commit went through: keep what it wrote (the
    ``changed`` orders, the ``positions``, and the node states if ``nodes`` changed them) at the versions
    it stored, since that is what the next unit will read."""
    version = nodes.checked_version()
    if nodes.changes and version is not None:
        node_states.put(NODE_STATES, version + 1, NodeStates(version + 1, nodes.current().statuses))
    for order in changed:
        orders.put(order.id, order.version, committed_copy_of_order(order))
    for position in positions:
        stock.put(
            (position.node_id, position.sku.value), position.version, committed_copy_of_position(position)
        )


def decode_stored(body: str | bytes, cls: type[T], converter: cattrs.Converter, what: str) -> T:
    """A stored JSON body as ``cls``: a row that cannot be read is a store failure, not bad input."""
    try:
        return from_json(body, cls, converter=converter)
    except OrderCoreError as e:
        raise StoreUnavailable(f"{what} cannot be read: {e}") from e


def reservation_changes(position: StockPosition) -> tuple[list[Reservation], list[str]]:
    """What a store that keeps each reservation in a row of its own writes when it stores ``position``:
    the reservations to write (insert or replace) and the keys of those to delete, in key order.

    A position never stored (``persisted_version`` 0) writes every reservation it holds. A stored one
    writes only the reservations its new ledger entries touched: each such key is written if the position
    still holds it and deleted if not. A reservation changes only through an entry naming its key, so the
    rows then hold what the position holds, and a write costs the entries' keys, not the reservations'
    number."""
    held = position.reservations
    if position.persisted_version == 0:
        return [held[k] for k in sorted(held)], []
    touched = sorted({e.key for e in position.new_entries() if e.kind in RESERVATION_KINDS and e.key})
    return [held[k] for k in touched if k in held], [k for k in touched if k not in held]


#: a kept copy of a position at most this many ledger entries behind its row is brought up to date from the
#: entries it lacks, rather than read whole with its reservations (see :func:`positions_at`)
CATCH_UP_ENTRIES = 64


#: a stale position: (node id, SKU, the version its row holds)
Stale = tuple[str, str, int]


#: a kept copy that can catch up: (node id, SKU, the kept copy's version, the version its row holds)
Behind = tuple[str, str, int, int]


def positions_at(
    cache: VersionedCopies[tuple[str, str], StockPosition],
    versions: Iterable[Stale],
    read_entries: Callable[[list[Behind]], Iterable[LedgerEntry]],
    read_whole: Callable[[list[tuple[str, str]]], list[StockPosition]],
    *,
    shared: bool = False,
) -> list[StockPosition]:
    """The positions whose rows ``versions`` lists (node id, SKU, the version the row holds), each at
    that version: a copy of the one ``cache`` keeps when it is at that version, else brought up to date,
    for a store whose other writers (processes on one database) change them.

    A kept copy at most :data:`CATCH_UP_ENTRIES` entries behind is advanced by the ledger entries it lacks,
    which ``read_entries`` reads for every such copy in one go (``sequence > kept, <= stored``): one or two
    entries when another worker reserved a unit, however many reservations the position holds. The rest,
    and any copy the entries read do not bring exactly to its row's version, are read whole by
    ``read_whole`` (which keeps what it decodes). Entries are immutable once committed, so those up to a
    version read before are the same whenever they are read. Advanced positions are kept at their new
    version. With ``shared``, what is current in ``cache`` (kept or just advanced) is handed out as the
    very object kept there, not a copy: for positions that are only read (see
    :meth:`StagedStock.read_for_skus`)."""
    found: list[StockPosition] = []
    behind: list[Behind] = []
    whole: list[tuple[str, str]] = []
    kept_at = cache.peek if shared else cache.get
    for node_id, sku, version in versions:
        current = kept_at((node_id, sku), version)
        if current is not None:
            found.append(current)
            continue
        kept = cache.version((node_id, sku))
        if kept is not None and 0 < version - kept <= CATCH_UP_ENTRIES:
            behind.append((node_id, sku, kept, version))
        else:
            whole.append((node_id, sku))
    if behind:
        entries: dict[tuple[str, str], list[LedgerEntry]] = {}
        for entry in read_entries(behind):
            entries.setdefault((entry.node_id, entry.sku.value), []).append(entry)
        for node_id, sku, kept, version in behind:
            copy = cache.peek((node_id, sku), kept)  # advanced() makes a new position: nothing changes it
            news = entries.get((node_id, sku), [])
            if copy is None or len(news) != version - kept:
                whole.append((node_id, sku))  # the copy went meanwhile, or the entries do not add up
                continue
            try:
                position = copy.advanced(news)
            except InvalidValue:
                whole.append((node_id, sku))
                continue
            cache.put((node_id, sku), version, position if shared else position.clone())
            found.append(position)
    if whole:
        found.extend(read_whole(whole))
    return found


def decode_position(
    body: str | bytes,
    reservations: Iterable[tuple[str, str | bytes]],
    converter: cattrs.Converter,
    what: str,
) -> StockPosition:
    """A stored position from its row's body and its reservations' rows, each ``(key, JSON body)``,
    read in one snapshot; a body that holds reservations of its own keeps them (rows win on a key both
    hold). An unreadable row, or one whose reservation is not under its key, is a store failure."""
    position = decode_stored(body, StockPosition, converter, what)
    rows = list(reservations)
    if not rows:
        return position
    held = position.reservations.as_dict()
    for key, text in rows:
        reservation = decode_stored(text, Reservation, converter, f"{what}: reservation {key!r}")
        if reservation.key != key:
            raise StoreUnavailable(f"{what}: the row of reservation {key!r} holds {reservation.key!r}")
        held[key] = reservation
    position.reservations = Reservations(held)
    return position


def decode_positions(
    rows: Iterable[Sequence[Any]],
    cache: VersionedCopies[tuple[str, str], StockPosition],
    converter: cattrs.Converter,
    where: str,
) -> list[StockPosition]:
    """Positions read whole, from rows of each position joined with its reservations' rows in one
    statement (one snapshot), each ``(node_id, sku, body, key, reservation body)`` (key and reservation
    body None for a position without any), decoded by :func:`decode_position` and kept in ``cache`` at
    their versions. ``where`` names the store in what a row that cannot be read raises."""
    grouped: dict[tuple[str, str], tuple[Any, list[tuple[str, Any]]]] = {}
    for node_id, sku, body, key, reservation in rows:
        held = grouped.setdefault((node_id, sku), (body, []))[1]
        if key is not None:
            held.append((key, reservation))
    positions = []
    for (node_id, sku), (body, held) in grouped.items():
        position = decode_position(body, held, converter, f"{where}: stock {node_id}/{sku}")
        cache.put((node_id, sku), position.version, position.clone())
        positions.append(position)
    return positions


def decode_node_day(
    node_id: str, day: date | str, version: int, taken: Mapping[str, int] | str | bytes, *, what: str
) -> NodeDay:
    """A stored node day from its columns: ``day`` a date or ISO text, ``taken`` a mapping or its JSON
    text. The day is at its stored version (``persisted_version == version``); a row that cannot be read
    is a store failure, not bad input."""
    try:
        if isinstance(day, str):
            day = date.fromisoformat(day)
        if isinstance(taken, str | bytes):
            taken = json.loads(taken)
        if not isinstance(taken, Mapping):
            raise InvalidValue("must be a JSON object", field="taken", value=taken)
        return NodeDay(node_id, day, dict(taken), version, version)
    except (OrderCoreError, ValueError, TypeError) as e:
        raise StoreUnavailable(f"{what} cannot be read: {e}") from e


def upgrade_stock_level(body: str | bytes, *, at: datetime, what: str = "stock level") -> StockPosition:
    """A stock level stored by schema 1 (the JSON of the former ``StockLevel``) as a position whose ledger
    opens with what it held: OPENED with its units on hand, SAFETY_STOCK_SET when it kept safety stock, and
    one hard reservation (key ``schema-1``) for the units it had reserved, which schema 1 did not tie to
    orders. Stores call this when they upgrade; an unreadable level is a store failure."""
    try:
        data: Any = json.loads(body)
        node_id, sku = data["node_id"], Sku(data["sku"])
        on_hand, reserved, safety = data["on_hand"], data.get("reserved", 0), data.get("safety_stock", 0)
        reason = "carried over from schema 1"
        entries = [
            LedgerEntry(
                node_id,
                sku,
                1,
                EntryKind.OPENED,
                on_hand,
                at,
                reason,
                backorderable=data.get("backorderable", False),
            )
        ]
        if safety:
            entries.append(LedgerEntry(node_id, sku, 2, EntryKind.SAFETY_STOCK_SET, safety, at, reason))
        if reserved:
            entries.append(
                LedgerEntry(
                    node_id,
                    sku,
                    len(entries) + 1,
                    EntryKind.RESERVED,
                    reserved,
                    at,
                    reason,
                    key="schema-1",
                    reference="schema-1",
                )
            )
        return StockPosition.replay(entries)
    except (OrderCoreError, ValueError, TypeError, KeyError) as e:
        raise StoreUnavailable(f"{what} cannot be upgraded: {e}") from e
