"""What every store adapter's repositories share: staging changes inside a unit of work.

A unit of work hands out orders, stock positions and node days that the caller may change, and records
idempotency keys; nothing reaches the store before ``commit``. These bases keep the staged objects, and a store fills in how to read what is
stored (``_load``...) and how to write at commit. The in-memory, SQLite and PostgreSQL stores all build on
them; so can an integrator's own store.
"""

from __future__ import annotations

import json
import keyword
import threading
import typing
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar

import attrs
import cattrs

from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    InvalidValue,
    OrderCoreError,
    OrderNotFound,
    StoreUnavailable,
)
from ordercore.events import OrderEvent
from ordercore.inventory import EntryKind, LedgerEntry, NodeDay, NodeStates, NodeStatus, StockPosition
from ordercore.inventory.capacity import check_day
from ordercore.inventory.held import Reservations, Supplies
from ordercore.inventory.ledger import RESERVATION_KINDS, Reservation, Supply, collect
from ordercore.inventory.nodes import check_node_id
from ordercore.lifecycle import OrderStatus, State
from ordercore.lines import OrderLine
from ordercore.order import Hold, Order
from ordercore.ports import (
    BackorderedLine,
    BackorderSummary,
    HeldOrder,
    IdempotencyRecord,
    OrderAge,
    OrderDigest,
    OutboxRecord,
)
from ordercore.serialization import (
    GENERATED_NAMES,
    TextEncoders,
    dumps_sorted,
    encode_str,
    from_json,
    to_json,
)
from ordercore.values import Actor, Address, Channel, CustomerId, CustomerRef, OrderId, Sku

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
    "Bounded",
    "StagedUnitOfWork",
    "Stale",
    "StoredJson",
    "VersionedCopies",
    "backorder_rows",
    "check_idempotency_key",
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

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: the longest idempotency key a store accepts (in characters)
MAX_IDEMPOTENCY_KEY_LENGTH = 200


class StagedOrders(ABC):
    """An order repository's staging: orders read in this unit are kept (later reads return the same
    object), added and saved orders wait for the commit."""

    def __init__(self) -> None:
        self.staged: dict[OrderId, Order] = {}
        self.new: set[OrderId] = set()
        # what the read model rows of each order read in this unit are made of, as stored (by version)
        self._read_model_inputs: dict[OrderId, _ReadModelInputs] = {}

    # -- what a store provides ------------------------------------------------------------------------------
    @abstractmethod
    def _load(self, order_id: OrderId) -> Order | None:
        """The stored order, as an object of its own (a copy), or None."""

    @abstractmethod
    def _stored_id(self, channel: Channel, external_ref: str) -> OrderId | None:
        """The id of the stored order with this channel and external reference, if any."""

    def _exists(self, order_id: OrderId) -> bool:
        return self._load(order_id) is not None

    #: True for a store whose commit refuses an order id already stored (``DuplicateOrder``, nothing
    #: written), so that :meth:`add` need not ask the store first: a new order costs no read
    refuses_duplicates_at_commit = False

    # -- the repository ------------------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        if order.id in self.staged or (not self.refuses_duplicates_at_commit and self._exists(order.id)):
            raise DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
        if order.external_ref is not None:
            existing = self.find_by_external_ref(order.channel, order.external_ref)
            if existing is not None:
                raise DuplicateOrder(
                    f"{order.channel} already sent {order.external_ref!r}", existing_order_id=existing.id
                )
        self.staged[order.id] = order
        self.new.add(order.id)

    def get(self, order_id: OrderId) -> Order:
        order = self.find(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def find(self, order_id: OrderId) -> Order | None:
        staged = self.staged.get(order_id)
        if staged is not None:
            return staged
        order = self._load(order_id)
        if order is not None:
            self.staged[order_id] = order
            self._read_model_inputs[order_id] = _read_model_inputs(order)
        return order

    def read_models_changed(self, order: Order) -> bool:
        """Whether the read model rows of ``order`` (its holds, backordered lines and digest) may differ
        from those stored with it, so that a store must rewrite them. False only for an order read in this
        unit at the version it is about to replace, whose rows are still those it was read with."""
        if order.id in self.new:
            return True
        read = self._read_model_inputs.get(order.id)
        if read is None or read.version != order.persisted_version:
            return True
        now = _read_model_inputs(order)
        if now.same_objects(read):
            return False
        return now.rows(order.id) != read.rows(order.id) or now.digest_key() != read.digest_key()

    def find_by_external_ref(self, channel: Channel, external_ref: str) -> Order | None:
        for order in self.staged.values():
            if order.channel == channel and order.external_ref == external_ref:
                return order
        order_id = self._stored_id(channel, external_ref)
        return None if order_id is None else self.find(order_id)

    def save(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        self.staged[order.id] = order

    # -- read models over committed orders (see ordercore.ports.OrderReports) ------------------------------
    def _orders_by_status(self, status: State, older_than: datetime | None, limit: int) -> list[OrderAge]:
        """Committed orders in ``status`` (since before ``older_than``), oldest first, at most ``limit``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no read models")

    def _held_orders(self, code: str | None, limit: int) -> list[HeldOrder]:
        """Committed active holds (of ``code``), oldest first, at most ``limit``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no read models")

    def _backorders(self, sku: Sku | None) -> list[tuple[Sku, BackorderedLine]]:
        """Committed backordered lines (of ``sku``) as (SKU, line), sorted by SKU, placed_at, order id
        and line id."""
        raise NotImplementedError(f"{type(self).__name__} keeps no read models")

    def orders_by_status(
        self, status: State, *, older_than: datetime | None = None, limit: int = 100
    ) -> list[OrderAge]:
        if not isinstance(status, State):
            raise InvalidValue("must be a State", field="status", value=status)
        if older_than is not None and (not isinstance(older_than, datetime) or older_than.tzinfo is None):
            raise InvalidValue("must be a timezone-aware datetime", field="older_than", value=older_than)
        return self._orders_by_status(status, older_than, _limit(limit))

    def held_orders(self, code: str | None = None, *, limit: int = 100) -> list[HeldOrder]:
        if code is not None and not isinstance(code, str):
            raise InvalidValue("must be a string", field="code", value=code)
        return self._held_orders(code, _limit(limit))

    def backorders_by_sku(self, sku: Sku | None = None) -> list[BackorderSummary]:
        if sku is not None:
            _sku(sku)
        return summarise_backorders(self._backorders(sku))

    def changed(self) -> list[Order]:
        """Orders to write at commit (new ones, and those with new events), in id order so that
        concurrent commits touch rows in the same order."""
        return sorted(
            (o for o in self.staged.values() if o.id in self.new or o.new_events()), key=lambda o: o.id.value
        )


class StagedStock(ABC):
    """An inventory repository's staging: positions read in this unit are kept (later reads return the
    same object), saved ones wait for the commit, and positions with new ledger entries are written.

    Besides the port's reads, :meth:`read_for_skus` hands out positions to be read and never changed (a
    sourcing decision reads every position of the order's SKUs and changes the few it reserves from):
    a store may then give the very copies it keeps, with nothing cloned, and :meth:`get` makes a unit's
    own copy of one only when it is asked for (to be changed)."""

    def __init__(self) -> None:
        self.staged: dict[tuple[str, Sku], StockPosition] = {}
        #: positions read by :meth:`read_for_skus` and not staged (never changed: possibly the store's)
        self.shared: dict[tuple[str, Sku], StockPosition] = {}

    # -- what a store provides ------------------------------------------------------------------------------
    @abstractmethod
    def _load(self, node_id: str, sku: Sku) -> StockPosition | None:
        """The stored position, as an object of its own (a copy), or None."""

    @abstractmethod
    def _load_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        """Every stored position of any of ``skus`` (distinct, at least one), in one read."""

    def _shared_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        """What :meth:`_load_for_skus` reads, as positions that the unit only reads and never changes, so a
        store may return the very copies it keeps (shared with other units). By default, its own copies."""
        return self._load_for_skus(skus)

    @abstractmethod
    def _load_for_node(self, node_id: str) -> list[StockPosition]:
        """Every stored position at ``node_id``, in one read."""

    @abstractmethod
    def _load_ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        """The stored ledger of a position, in sequence order."""

    # -- the repository ------------------------------------------------------------------------------------
    def get(self, node_id: str, sku: Sku) -> StockPosition | None:
        key = (node_id, _sku(sku))
        staged = self.staged.get(key)
        if staged is not None:
            return staged
        shared = self.shared.pop(key, None)
        position = self._load(node_id, sku) if shared is None else shared.clone()
        if position is not None:
            self.staged[key] = position
        return position

    def _stage(self, position: StockPosition) -> None:
        """Keep ``position``, just read, unless this unit already holds that one: the unit's own copy, or
        a copy of the one :meth:`read_for_skus` gave (what the unit has seen stays what it sees)."""
        key = (position.node_id, position.sku)
        if key not in self.staged:
            shared = self.shared.pop(key, None)
            self.staged[key] = position if shared is None else shared.clone()

    def read_for_skus(self, skus: Iterable[Sku]) -> dict[tuple[str, Sku], StockPosition]:
        """Every position of any of ``skus`` by (node id, SKU), read in one go, **to be read only**:
        those this unit holds already (its own copies, to be changed), and for the rest positions that may
        be the store's (never changed: ask :meth:`get` for the unit's own copy of one before changing
        it). Later reads in the unit see what this read saw."""
        wanted = _wanted(skus)
        if not wanted:
            return {}
        staged, shared = self.staged, self.shared
        found: dict[tuple[str, Sku], StockPosition] = {}
        if staged:  # the unit's own copies win, and new positions it has not stored yet are among them
            chosen = set(wanted)
            found.update((k, p) for k, p in staged.items() if k[1] in chosen)
        keep = shared.setdefault  # one read earlier in the unit wins over this one
        for position in self._shared_for_skus(wanted):
            key = (position.node_id, position.sku)
            if key not in found:
                found[key] = keep(key, position)
        return found

    def for_sku(self, sku: Sku) -> list[StockPosition]:
        return self.for_skus([sku])

    def for_skus(self, skus: Iterable[Sku]) -> list[StockPosition]:
        wanted = _wanted(skus)
        if not wanted:
            return []
        for position in self._load_for_skus(wanted):
            self._stage(position)
        chosen = set(wanted)
        return [
            self.staged[k] for k in sorted(self.staged, key=lambda k: (k[1].value, k[0])) if k[1] in chosen
        ]

    def for_node(self, node_id: str) -> list[StockPosition]:
        check_node_id(node_id)
        for position in self._load_for_node(node_id):
            self._stage(position)
        mine = [p for (node, _), p in self.staged.items() if node == node_id]
        return sorted(mine, key=lambda p: p.sku.value)

    def save(self, position: StockPosition) -> None:
        if not isinstance(position, StockPosition):
            raise InvalidValue("must be a StockPosition", field="position", value=position)
        key = (position.node_id, position.sku)
        if self.shared.get(key) is position:
            raise InvalidValue(
                "is a position read_for_skus gave, to be read only: change the one get() gives",
                field="position",
                value=f"{position.node_id}/{position.sku}",
            )
        self.shared.pop(key, None)
        self.staged[key] = position

    def ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        return self._load_ledger(node_id, _sku(sku))

    def changed(self) -> list[StockPosition]:
        """Positions to write at commit (those with new ledger entries), in (node id, SKU) order so that
        concurrent commits touch rows in the same order."""
        return [
            p
            for k, p in sorted(self.staged.items(), key=lambda item: (item[0][0], item[0][1].value))
            if p.new_entries()
        ]


def _wanted(skus: Iterable[Sku]) -> list[Sku]:
    """``skus`` (an iterable of Sku, not a single one), each once, sorted."""
    if isinstance(skus, Sku | str | bytes) or not isinstance(skus, Iterable):
        raise InvalidValue("must be an iterable of Sku", field="skus", value=skus)
    return sorted({_sku(s, "skus") for s in skus}, key=lambda s: s.value)


def _sku(value: object, field: str = "sku") -> Sku:
    if not isinstance(value, Sku):
        raise InvalidValue("must be a Sku", field=field, value=value)
    return value


class StagedCapacity(ABC):
    """A capacity repository's staging: node days read in this unit are kept (later reads return the same
    object, a fresh empty one too), saved ones wait for the commit, and days that changed are written."""

    def __init__(self) -> None:
        self.staged: dict[tuple[str, date], NodeDay] = {}

    # -- what a store provides ------------------------------------------------------------------------------
    @abstractmethod
    def _load(self, node_id: str, day: date) -> NodeDay | None:
        """The stored day, as an object of its own (a copy), or None."""

    @abstractmethod
    def _load_for_day(self, day: date, node_ids: Sequence[str]) -> list[NodeDay]:
        """Every stored day of ``day`` for any of ``node_ids`` (distinct, at least one), in one read."""

    # -- the repository ------------------------------------------------------------------------------------
    def get(self, node_id: str, day: date) -> NodeDay:
        collect("node day", lambda: check_node_id(node_id), lambda: check_day(day))
        key = (node_id, day)
        staged = self.staged.get(key)
        if staged is None:
            stored = self._load(node_id, day)
            staged = self.staged[key] = NodeDay.open(node_id, day) if stored is None else stored
        return staged

    def for_day(self, day: date, node_ids: Iterable[str]) -> list[NodeDay]:
        check_day(day)
        if isinstance(node_ids, str | bytes) or not isinstance(node_ids, Iterable):  # a str is one id
            raise InvalidValue("must be an iterable of node ids", field="node_ids", value=node_ids)
        wanted = sorted({check_node_id(n, "node_ids") for n in node_ids})
        missing = [n for n in wanted if (n, day) not in self.staged]
        if missing:
            for node_day in self._load_for_day(day, missing):
                self.staged.setdefault((node_day.node_id, node_day.day), node_day)
        return [self.staged.setdefault((n, day), NodeDay.open(n, day)) for n in wanted]

    def save(self, node_day: NodeDay) -> None:
        if not isinstance(node_day, NodeDay):
            raise InvalidValue("must be a NodeDay", field="node_day", value=node_day)
        self.staged[(node_day.node_id, node_day.day)] = node_day

    def changed(self) -> list[NodeDay]:
        """Days to write at commit (those that changed), in (node id, day) order so that concurrent
        commits touch rows in the same order."""
        return [d for _, d in sorted(self.staged.items(), key=lambda item: item[0]) if d.changed]


class StagedOutbox(ABC):
    """An outbox's staging: ids marked published are applied at commit."""

    def __init__(self) -> None:
        self.published: list[str] = []

    @abstractmethod
    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        """Events not yet published, in commit order."""

    def mark_published(self, event_ids: Sequence[str]) -> None:
        self.published.extend(event_ids)

    def changed(self) -> list[str]:
        """Distinct ids to mark at commit, in the order given."""
        return list(dict.fromkeys(self.published))


class StagedIdempotency(ABC):
    """An idempotency repository's staging: records read or added in this unit are kept, added ones wait
    for the commit."""

    def __init__(self) -> None:
        self.staged: dict[str, IdempotencyRecord] = {}
        self.new: list[str] = []

    # -- what a store provides ------------------------------------------------------------------------------
    @abstractmethod
    def _load(self, key: str) -> IdempotencyRecord | None:
        """The stored record of ``key``, or None."""

    # -- the repository ------------------------------------------------------------------------------------
    def get(self, key: str) -> IdempotencyRecord | None:
        check_idempotency_key(key)
        staged = self.staged.get(key)
        if staged is not None:
            return staged
        record = self._load(key)
        if record is not None:
            self.staged[key] = record
        return record

    def add(self, record: IdempotencyRecord) -> None:
        if not isinstance(record, IdempotencyRecord):
            raise InvalidValue("must be an IdempotencyRecord", field="record", value=record)
        if self.get(record.key) is not None:
            raise key_taken(record.key)
        self.staged[record.key] = record
        self.new.append(record.key)

    def changed(self) -> list[IdempotencyRecord]:
        """Records to insert at commit, in key order so that concurrent commits touch rows in the same
        order."""
        return [self.staged[k] for k in sorted(self.new)]


class StagedNodes(ABC):
    """A node state repository's staging: the stored states are read once per unit, changes wait for the
    commit, which checks that the states are still at the version read (see
    :class:`ordercore.ports.NodeStateRepository`)."""

    def __init__(self) -> None:
        self.read: NodeStates | None = None
        self.changes: dict[str, NodeStatus] = {}

    @abstractmethod
    def _load(self) -> NodeStates:
        """The stored states."""

    def current(self) -> NodeStates:
        if self.read is None:
            self.read = self._load()
        if not self.changes:
            return self.read
        return NodeStates.of(self.read.version, [*self.read.statuses, *self.changes.values()])

    def set_online(self, node_id: str, online: bool, *, actor: Actor, at: datetime, reason: str = "") -> bool:
        status = NodeStatus(node_id, online, at, actor, reason)  # checks every argument
        if self.current().is_online(node_id) == online:
            return False
        self.changes[node_id] = status
        return True

    def checked_version(self) -> int | None:
        """The version the unit read and its commit must find (None: the unit did not read the states)."""
        return None if self.read is None else self.read.version

    def changed(self) -> list[NodeStatus]:
        """Statuses to write at commit, in node id order."""
        return [self.changes[k] for k in sorted(self.changes)]


def check_idempotency_key(key: object, field: str = "key") -> str:
    """``key`` if it is a usable idempotency key: a non-blank string of at most
    :data:`MAX_IDEMPOTENCY_KEY_LENGTH` characters."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidValue("must be a non-blank string", field=field, value=key)
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidValue(f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters", field=field, value=key)
    return key


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


def node_states_changed(expected: int, actual: int | None) -> ConcurrencyConflict:
    """The error for a commit that read the node states at ``expected`` and finds them at ``actual``."""
    return ConcurrencyConflict("node states", expected, actual)


def key_taken(key: str) -> ConcurrencyConflict:
    """The error for an idempotency key that another unit of work stored first: a conflict, so that the
    request runs again and finds the record."""
    return ConcurrencyConflict(f"idempotency key {key!r}", 0, 1)


class StagedUnitOfWork(ABC):
    """A unit of work over staged repositories: nothing is written before :meth:`commit`, which writes
    every staged change at once (through :meth:`_write`) or nothing; leaving the ``with`` block without
    committing drops the staged changes."""

    orders: StagedOrders
    inventory: StagedStock
    capacity: StagedCapacity
    outbox: StagedOutbox
    idempotency: StagedIdempotency
    nodes: StagedNodes

    def __init__(self) -> None:
        self._reset()

    @abstractmethod
    def _repositories(
        self,
    ) -> tuple[StagedOrders, StagedStock, StagedCapacity, StagedOutbox, StagedIdempotency, StagedNodes]:
        """Fresh, empty repositories for this unit."""

    @abstractmethod
    def _write(
        self,
        orders: Sequence[Order],
        new: AbstractSet[OrderId],
        positions: Sequence[StockPosition],
        days: Sequence[NodeDay],
        published: Sequence[str],
        keys: Sequence[IdempotencyRecord],
        node_version: int | None,
        node_statuses: Sequence[NodeStatus],
    ) -> None:
        """Check the node states and insert the idempotency ``keys`` (ConcurrencyConflict from
        :func:`key_taken` when one is stored already), then store ``orders`` (those in ``new`` are
        inserted) with their new events in the outbox, the stock ``positions`` with their new ledger
        entries, the node ``days`` (positions and days each checked to be stored at its
        ``persisted_version``), and the ``published`` marks: all of it, in this order, or raise and store
        nothing. Keys go first so that two requests racing with one key end in a conflict on the key rather
        than on what the orders hold.

        ``node_version`` (when not None: the unit read the node states) must be the version of the stored
        states, or the commit fails with :func:`node_states_changed`; a store whose writers run at once
        must keep the states from changing until this commit ends (a shared lock that a commit changing
        them takes exclusively). ``node_statuses`` (then ``node_version`` is not None) are stored, and the
        version becomes ``node_version + 1``."""

    def _release(self) -> None:
        """Give back what the unit holds (a connection, say) when its ``with`` block ends."""
        return None  # nothing, unless a store holds something

    def _reset(self) -> None:
        (
            self.orders,
            self.inventory,
            self.capacity,
            self.outbox,
            self.idempotency,
            self.nodes,
        ) = self._repositories()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.rollback()
        finally:
            self._release()

    def commit(self) -> None:
        changed = self.orders.changed()
        positions = self.inventory.changed()
        days = self.capacity.changed()
        published = self.outbox.changed()
        keys = self.idempotency.changed()
        statuses = self.nodes.changed()
        if changed or positions or days or published or keys or statuses:
            self._write(
                changed,
                self.orders.new,
                positions,
                days,
                published,
                keys,
                self.nodes.checked_version(),
                statuses,
            )
        for order in changed:
            order.persisted_version = order.version
        for position in positions:
            position.mark_persisted()
        for node_day in days:
            node_day.mark_persisted()
        self._reset()

    def rollback(self) -> None:
        if (
            self.orders.staged
            or self.inventory.staged
            or self.inventory.shared
            or self.capacity.staged
            or self.outbox.published
            or self.idempotency.staged
            or self.nodes.read is not None
        ):
            self._reset()


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


_ORDER_ATTRIBUTES = tuple(a.name for a in attrs.fields(Order))
#: order attributes written as JSON, in key order, and those whose values are immutable (frozen values or
#: tuples of them, replaced when they change), whose text is kept by identity like an event's
_ORDER_KEYS = tuple(sorted(set(_ORDER_ATTRIBUTES) - {"lifecycle", "persisted_version"}))
_ORDER_KEPT = frozenset(
    {
        "customer",
        "shipping_address",
        "billing_address",
        "lines",
        "discounts",
        "shipping_charges",
        "shipping_taxes",
        "holds",
        "allocations",
    }
)


#: how an attribute is written: (key, '"key": ', the encoder of its type, whether its text is kept by
#: identity), or the history of an order (encoder None)
_Field = tuple[str, str, Callable[[Any], Any] | None, bool]


class StoredJson:
    """The JSON text a store writes for orders, events, stock positions and ledger entries: the very text
    :func:`to_json` gives, with the text of each event kept (events are immutable, and an event object is
    only ever encoded to one text). Writing an order encodes only the events it has not seen yet, however
    long the history, and the outbox row of an event reuses the text its order's history holds.

    Orders, events and positions are written attribute by attribute, in key order, by a function generated
    once per class, each attribute by the :class:`~ordercore.serialization.TextEncoders` encoder of its
    type (JSON text written straight from the values). The text of their immutable attributes (lines,
    addresses, the customer, allocations, a position's reservations: frozen values or tuples of them,
    replaced when they change) is kept too: an order read again shares them with the copy it was read
    from, and an event shares them with its order (``OrderCreated`` its lines and addresses), so each is
    encoded once. The first object of each class is also written as a whole, and attribute by attribute
    only if both agree (a converter of its own making may write them otherwise). At most ``limit`` events
    and as many attribute values are kept (the oldest go first), each by identity, with the object itself
    so that its id is not reused."""

    def __init__(self, converter: cattrs.Converter, limit: int = 50_000) -> None:
        self._converter = converter
        self._events: Bounded[int, tuple[OrderEvent, str]] = Bounded(limit)
        self._parts: Bounded[int, tuple[object, str]] = Bounded(limit)
        # per class: how to write it attribute by attribute, or None to write it whole
        self._plans: dict[type, Callable[[Any], str] | None] = {}
        self._texts = TextEncoders(converter)

    def event(self, event: OrderEvent) -> str:
        """``to_json(event)``."""
        entry = self._events.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        text = self._text(event, self._event_whole)
        self._events.put(id(event), (event, text))
        return text

    def order(self, order: Order) -> str:
        """``to_json(order)``."""
        return self._text(order, self._order_whole)

    def position(self, position: StockPosition) -> str:
        """``to_json(position)``."""
        return self._text(position, self._whole)

    def position_row(self, position: StockPosition) -> str:
        """``to_json`` of ``position`` with no reservations: the body of its row in a store that keeps
        each reservation in a row of its own (see :func:`reservation_changes`), so that writing a position
        costs the same however many orders hold units of it."""
        if not position.reservations:
            return self.position(position)
        shell = position.clone()
        shell.reservations = _NO_RESERVATIONS
        return self.position(shell)

    def reservation(self, reservation: Reservation) -> str:
        """``to_json(reservation)``, kept by identity (a reservation is immutable, and replaced when it
        changes)."""
        return self._kept(reservation, self._texts.for_type(Reservation))

    def entry(self, entry: LedgerEntry) -> str:
        """``to_json(entry)`` for a ledger entry."""
        return self._texts.text(entry)

    def _text(self, obj: Any, whole: Callable[[Any], str]) -> str:
        cls = type(obj)
        plan: Callable[[Any], str] | None = self._plans.get(cls, _UNPLANNED)
        if plan is _UNPLANNED:
            text = whole(obj)
            try:
                # planned again once it agrees, with the encoders checked on the way (one call fewer each)
                agrees = self._plan(cls)(obj) == text
                plan = self._plan(cls) if agrees else None
            except Exception:  # any failure: write this class whole, as to_json would
                plan = None
            self._plans[cls] = plan
            return text
        if plan is None:
            return whole(obj)
        return plan(obj)

    def _plan(self, cls: type) -> Callable[[Any], str]:
        """The writer of ``cls`` attribute by attribute (see :meth:`_fields`), generated as one
        function."""
        namespace: dict[str, Any] = {**GENERATED_NAMES, "_kept": self._kept, "_event": self.event}
        hints = typing.get_type_hints(cls)
        pieces = []
        for i, (key, prefix, encode, immutable) in enumerate(self._fields(cls)):
            if not key.isidentifier() or keyword.iskeyword(key):
                raise ValueError(f"cannot write attribute {key!r} by name")
            head = ("{" if i == 0 else ", ") + prefix
            if encode is None:  # an order's history: the kept text of its events
                pieces.append(f"{head + '['!r}, ', '.join([_event(ev) for ev in o.{key}]), ']'")
                continue
            head = repr(head)
            namespace[f"_e{i}"] = encode
            if immutable:
                call = f"_kept(o.{key}, _e{i})"
            elif key in hints and encode is self._texts.for_type(hints[key]):  # its type's: maybe inline
                call = self._texts.expression(hints[key], f"o.{key}", f"_e{i}")
            else:
                call = f"_e{i}(o.{key})"
            pieces.append(f"{head}, {call}")
        if not pieces:
            return lambda _: "{}"
        # one join: a chain of + would copy the text written so far at every attribute
        source = f"def write(o):\n    return ''.join(({', '.join(pieces)}, '}}'))\n"
        exec(compile(source, f"<stored json of {cls.__qualname__}>", "exec"), namespace)
        write: Callable[[Any], str] = namespace["write"]
        return write

    def _fields(self, cls: type) -> list[_Field]:
        """How to write ``cls`` attribute by attribute: an order's attributes but its lifecycle and
        persistence bookkeeping, a position's but its bookkeeping, an event's with its ``type``."""
        hints = typing.get_type_hints(cls)
        encoder = self._texts.for_type
        if cls is Order:
            return [
                (k, _dumps(k) + ": ", None if k == "history" else encoder(hints[k]), k in _ORDER_KEPT)
                for k in _ORDER_KEYS
            ]
        if cls is StockPosition:
            return [
                (
                    k,
                    _dumps(k) + ": ",
                    self._mapping(hints[k]) if k in _POSITION_MAPS else encoder(hints[k]),
                    False,
                )
                for k in _POSITION_KEYS
            ]
        type_text = _dumps(cls.__name__)
        plan: list[_Field] = [("type", '"type": ', lambda _: type_text, False)]
        for a in attrs.fields(cls):
            hint = hints[a.name]
            kept = typing.get_origin(hint) is tuple or hint in _KEPT_TYPES
            plan.append((a.name, _dumps(a.name) + ": ", encoder(hint), kept))
        return sorted(plan, key=lambda f: f[0])

    def _mapping(self, hint: Any) -> Callable[[Any], str]:
        """The encoder of a mapping of ``str`` to immutable values (a position's reservations, its
        supply), the text of each value kept by identity: a position's body holds every open reservation,
        most of them written before. The supply, an immutable :class:`Supplies` that copies of a position
        share until it changes, is kept whole by identity too."""
        if hint is Reservations:
            value_type: Any = Reservation
        elif hint is Supplies:
            value_type = Supply
        else:
            value_type = typing.get_args(hint)[1]
        whole, item = self._texts.for_type(hint), self._texts.for_type(value_type)
        kept = self._kept
        plain = hint if hint in (Reservations, Supplies) else dict

        def encode(value: Any) -> str:
            if type(value) is not plain or not all(type(k) is str for k in value):
                return whole(value)
            return (
                "{"
                + ", ".join([encode_str(k) + ": " + kept(v, item) for k, v in sorted(value.items())])
                + "}"
            )

        if hint is Supplies:
            return lambda value: kept(value, encode) if type(value) is Supplies else encode(value)
        return encode

    def _kept(self, value: Any, encode: Callable[[Any], str]) -> str:
        """``encode(value)`` for an immutable value, kept by identity."""
        entry = self._parts.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        text = encode(value)
        self._parts.put(id(value), (value, text))
        return text

    def _whole(self, obj: Any) -> str:
        return to_json(obj, converter=self._converter)

    def _event_whole(self, event: OrderEvent) -> str:
        return _dumps(self._converter.unstructure(event))

    def _order_whole(self, order: Order) -> str:
        """The order without its history, encoded as a whole, and the kept text of each event of the
        history put in its place (keys are sorted, so ``history`` sits between those before and after
        it)."""
        shell = object.__new__(Order)
        for name in _ORDER_ATTRIBUTES:
            object.__setattr__(shell, name, getattr(order, name))
        object.__setattr__(shell, "history", [])
        data = self._converter.unstructure(shell)
        if not isinstance(data, dict) or data.get("history") != []:  # a converter of its own making
            return to_json(order, converter=self._converter)
        head = {k: v for k, v in data.items() if k < "history"}
        tail = {k: v for k, v in data.items() if k > "history"}
        parts = [_dumps(head)[1:-1]] if head else []
        parts.append('"history": [' + ", ".join([self.event(ev) for ev in order.history]) + "]")
        if tail:
            parts.append(_dumps(tail)[1:-1])
        return "{" + ", ".join(parts) + "}"


_UNPLANNED: Any = object()
#: a position's attributes written as JSON, in key order (not its persistence bookkeeping), and those that
#: map keys to immutable values
_POSITION_KEYS = tuple(
    sorted(
        a.name
        for a in attrs.fields(StockPosition)
        if a.name not in {"persisted_version", "_recorded", "_held_sum"}
    )
)
_POSITION_MAPS = frozenset({"reservations", "supply"})
_NO_RESERVATIONS = Reservations()
_KEPT_TYPES = (Address, CustomerRef, Address | None, CustomerRef | None)


def _dumps(data: Any) -> str:
    """JSON text as :func:`to_json` writes it."""
    return dumps_sorted(data)


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


# -- read models: what a store keeps next to each order, rewritten whenever the order is written ------------
def _limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidValue("must be an integer", field="limit", value=limit)
    return max(limit, 0)


def status_since(order: Order) -> datetime:
    """When ``order`` entered its current status: the first event of the latest run of events that left
    it in that status (``updated_at`` for an order without history)."""
    since, previous = order.updated_at, None
    for ev in order.history:
        if ev.status.name != previous:
            since, previous = ev.occurred_at, ev.status.name
    return since


def hold_rows(order: Order) -> list[HeldOrder]:
    """The active holds of ``order``, in code order."""
    return _hold_rows(order.id, order.holds)


def backorder_rows(order: Order) -> list[tuple[Sku, BackorderedLine]]:
    """The lines of ``order`` with backordered units, with their SKU, in line order; ``placed_at`` is when
    the order was placed (created, for one never placed)."""
    return _backorder_rows(order.id, order.lines, order.placed_at or order.created_at)


def _hold_rows(order_id: OrderId, holds: Iterable[Hold]) -> list[HeldOrder]:
    return sorted((HeldOrder(order_id, h.code, h.message, h.placed_at) for h in holds), key=lambda h: h.code)


def _backorder_rows(
    order_id: OrderId, lines: Iterable[OrderLine], placed_at: datetime
) -> list[tuple[Sku, BackorderedLine]]:
    return [
        (line.sku, BackorderedLine(order_id, line.id, line.qty.backordered, placed_at))
        for line in lines
        if line.qty.backordered > 0
    ]


class _ReadModelInputs(NamedTuple):
    """Everything the read model rows of an order are made of (its holds, lines, adjustments and
    customer are immutable, replaced when they change), and the version it was read at."""

    version: int
    holds: tuple[Hold, ...]
    lines: tuple[OrderLine, ...]
    placed_at: datetime
    # what its digest is made of, besides its lines
    placed: datetime | None
    live: bool
    customer: CustomerRef
    currency: str
    adjustments: tuple[tuple[Any, ...], ...]

    def same_objects(self, other: _ReadModelInputs) -> bool:
        return (
            self.holds is other.holds
            and self.lines is other.lines
            and self.placed_at == other.placed_at
            and self.placed == other.placed
            and self.live is other.live
            and self.customer is other.customer
            and self.currency == other.currency
            and all(a is b for a, b in zip(self.adjustments, other.adjustments, strict=True))
        )

    def rows(self, order_id: OrderId) -> tuple[list[HeldOrder], list[tuple[Sku, BackorderedLine]]]:
        return _hold_rows(order_id, self.holds), _backorder_rows(order_id, self.lines, self.placed_at)

    def digest_key(self) -> tuple[Any, ...] | None:
        """Everything the digest (see :func:`order_digest`) depends on, None for an order with none: its
        items and its total, which depends on each line's price, live units and adjustments only."""
        if self.placed is None or not self.live:
            return None
        lines = tuple(
            (line.sku, line.unit_price, line.qty.ordered, line.qty.cancelled, line.discounts, line.taxes)
            for line in self.lines
        )
        return self.placed, self.customer.id, self.currency, self.adjustments, lines


def _read_model_inputs(order: Order) -> _ReadModelInputs:
    return _ReadModelInputs(
        order.persisted_version,
        order.holds,
        order.lines,
        order.placed_at or order.created_at,
        order.placed_at,
        _is_live(order),
        order.customer,
        order.currency,
        (order.discounts, order.shipping_charges, order.shipping_taxes),
    )


#: statuses whose orders no longer count as placed for :func:`order_digest`
_NOT_LIVE = frozenset({OrderStatus.REJECTED.name, OrderStatus.CANCELLED.name})


def _is_live(order: Order) -> bool:
    return order.placed_at is not None and order.status.name not in _NOT_LIVE


def order_digest(order: Order) -> OrderDigest | None:
    """What a store's recent orders (``RecentOrders.placed_since``) say of ``order``: its customer, when
    it was placed, its items (SKU and live units, ordered less cancelled, per line) and its grand total;
    None for an order never placed, rejected or cancelled."""
    if not _is_live(order):
        return None
    assert order.placed_at is not None
    return OrderDigest(
        order.id,
        order.customer.id,
        order.placed_at,
        frozenset((str(line.sku), line.qty.ordered - line.qty.cancelled) for line in order.lines),
        order.totals().grand_total,
    )


def check_recent_orders_query(customer_id: object, since: object) -> None:
    """Refuse what ``placed_since`` cannot answer (InvalidValue): a customer id that is not a
    :class:`~ordercore.values.CustomerId`, a moment that is not a timezone-aware datetime."""
    if not isinstance(customer_id, CustomerId):
        raise InvalidValue("must be a CustomerId", field="customer_id", value=customer_id)
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise InvalidValue("must be a timezone-aware datetime", field="since", value=since)


def newest_first(digests: Iterable[OrderDigest]) -> list[OrderDigest]:
    """``digests`` newest first (the later order id first among orders placed at one moment)."""
    return sorted(digests, key=lambda d: (d.placed_at, d.order_id.value), reverse=True)


def summarise_backorders(rows: Iterable[tuple[Sku, BackorderedLine]]) -> list[BackorderSummary]:
    """One summary per SKU of ``rows`` (sorted by SKU, then as given), sorted by SKU; lines keep the order
    of ``rows``."""
    by_sku: dict[Sku, list[BackorderedLine]] = {}
    for sku, line in rows:
        by_sku.setdefault(sku, []).append(line)
    return [
        BackorderSummary(
            sku,
            sum(line.quantity for line in lines),
            len({line.order_id for line in lines}),
            min(line.placed_at for line in lines),
            tuple(lines),
        )
        for sku, lines in sorted(by_sku.items(), key=lambda item: item[0].value)
    ]
