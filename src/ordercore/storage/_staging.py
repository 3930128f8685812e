"""Staging inside a unit of work: the bases every store's repositories build on, which keep the
orders, positions, node days and idempotency keys a unit hands out until ``commit``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from types import TracebackType
from typing import Self

from ordercore.errors import ConcurrencyConflict, DuplicateOrder, InvalidValue, OrderNotFound
from ordercore.inventory import LedgerEntry, NodeDay, NodeStates, NodeStatus, StockPosition
from ordercore.inventory.capacity import check_day
from ordercore.inventory.ledger import collect
from ordercore.inventory.nodes import check_node_id
from ordercore.lifecycle import State
from ordercore.order import Order
from ordercore.ports import (
    BackorderedLine,
    BackorderSummary,
    HeldOrder,
    IdempotencyRecord,
    OrderAge,
    OutboxRecord,
)
from ordercore.storage._read_models import (
    _read_model_inputs,
    _ReadModelInputs,
    check_limit,
    summarise_backorders,
)
from ordercore.values import Actor, Channel, OrderId, Sku, check_text_fault

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
        _order_id(order_id)
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
        if not isinstance(channel, Channel):
            raise InvalidValue("must be a Channel", field="channel", value=channel)
        if not isinstance(external_ref, str):
            raise InvalidValue("must be a string", field="external_ref", value=external_ref)
        check_text_fault(external_ref, "external_ref")  # no order holds it, and a SQL store cannot look it up
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
        return self._orders_by_status(status, older_than, check_limit(limit))

    def held_orders(self, code: str | None = None, *, limit: int = 100) -> list[HeldOrder]:
        if code is not None and not isinstance(code, str):
            raise InvalidValue("must be a string", field="code", value=code)
        return self._held_orders(code, check_limit(limit))

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
        collect("stock position", lambda: check_node_id(node_id), lambda: _sku(sku))
        key = (node_id, sku)
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
        collect("stock position", lambda: check_node_id(node_id), lambda: _sku(sku))
        return self._load_ledger(node_id, sku)

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


def _order_id(value: object, field: str = "order_id") -> OrderId:
    if not isinstance(value, OrderId):
        raise InvalidValue("must be an OrderId", field=field, value=value)
    return value


def check_purge(keys_before: object, days_before: object) -> None:
    """Refuse what ``Housekeeping.purge`` cannot act on (InvalidValue): a ``keys_before`` that is not a
    timezone-aware datetime, a ``days_before`` that is not a date (a datetime is refused too: which day
    of it would be meant is not said); None for either is nothing to purge of that kind."""
    if keys_before is not None and (not isinstance(keys_before, datetime) or keys_before.tzinfo is None):
        raise InvalidValue(
            "must be a timezone-aware datetime or None", field="keys_before", value=keys_before
        )
    if days_before is not None and (not isinstance(days_before, date) or isinstance(days_before, datetime)):
        raise InvalidValue("must be a date or None", field="days_before", value=days_before)


def check_list_ids(status: object, after: object, limit: object) -> int:
    """Refuse what ``OrderRepository.list_ids`` cannot answer (InvalidValue): a status that is not a
    lifecycle :class:`~ordercore.lifecycle.State`, an ``after`` that is not an OrderId, a limit that is
    not an integer; the limit to apply (a negative one lists nothing)."""
    if status is not None and not isinstance(status, State):
        raise InvalidValue(
            "must be a lifecycle State (OrderStatus.PLACED, say) or None", field="status", value=status
        )
    if after is not None:
        _order_id(after, "after")
    return check_limit(limit)


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
        if isinstance(event_ids, str | bytes) or not isinstance(event_ids, Sequence):
            raise InvalidValue("must be a sequence of event ids", field="event_ids", value=event_ids)
        for i, event_id in enumerate(event_ids):
            if not isinstance(event_id, str) or not event_id:
                raise InvalidValue("must be an event id", field=f"event_ids[{i}]", value=event_id)
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
    check_text_fault(key, field)
    return key


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
