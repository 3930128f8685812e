"""The order lifecycle: a state machine declared as data.

States and triggers are objects (not strings looked up late); transitions are data with guard callables.
A :class:`Lifecycle` is checked when it is built (unknown states or triggers, ambiguous transitions, exits
from final states, unreachable states, dead ends) and can be extended by users without forking::

    REVIEW = State("awaiting_fraud_review")
    lifecycle = DEFAULT_LIFECYCLE.extend(states=[REVIEW], triggers=[...], transitions=[...])

Where the order's line quantities are the truth (allocated, shipped, delivered, ...), the target state is
derived from them (:func:`derive_status`) and the transition declares the set of targets it may lead to.
Where the state is a decision (hold, reject, cancel, accept), the target is explicit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from ordercore.errors import IllegalTransition, InvalidValue, LifecycleDefinitionError

if TYPE_CHECKING:
    from ordercore.lines import LineQuantities as QuantityTotals
    from ordercore.order import Order

__all__ = [
    "DEFAULT_LIFECYCLE",
    "Guard",
    "Lifecycle",
    "OrderStatus",
    "State",
    "Transition",
    "Trigger",
    "Triggers",
    "derive_status",
]


@attrs.frozen(repr=False, cache_hash=True)
class State:
    """A lifecycle state, identified by its name. ``final`` states have no way out."""

    name: str
    final: bool = attrs.field(default=False, eq=False)
    description: str = attrs.field(default="", eq=False)

    def __repr__(self) -> str:
        return f"State({self.name!r})"

    def __str__(self) -> str:
        return self.name


@attrs.frozen(repr=False, cache_hash=True)
class Trigger:
    """What asks for a transition. ``manual`` triggers can be fired with :meth:`Order.fire`; the others
    belong to an order method that also changes quantities or holds (``ship``, ``hold``...)."""

    name: str
    manual: bool = attrs.field(default=True, eq=False)
    description: str = attrs.field(default="", eq=False)

    def __repr__(self) -> str:
        return f"Trigger({self.name!r})"

    def __str__(self) -> str:
        return self.name


#: A guard gets the order as it is before the transition and says whether the transition may happen.
Guard = Callable[["Order"], bool]


def _frozen_states(value: State | Iterable[State]) -> frozenset[State]:
    if isinstance(value, State):
        return frozenset((value,))
    return frozenset(value)


def _guard_tuple(value: Iterable[Guard]) -> tuple[Guard, ...]:
    return tuple(value)


@attrs.frozen
class Transition:
    """``trigger`` moves an order from any of ``sources`` to one of ``targets`` when every guard agrees."""

    trigger: Trigger
    sources: frozenset[State] = attrs.field(converter=_frozen_states)
    targets: frozenset[State] = attrs.field(converter=_frozen_states)
    guards: tuple[Guard, ...] = attrs.field(default=(), converter=_guard_tuple)
    #: the targets' names, for a quick membership test on every transition
    target_names: frozenset[str] = attrs.field(init=False, eq=False, hash=False, repr=False)
    #: the only target, for a transition that has one (every transition of a manual trigger), else None
    target: State | None = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "target_names", frozenset(s.name for s in self.targets))
        object.__setattr__(self, "target", next(iter(self.targets)) if len(self.targets) == 1 else None)


class OrderStatus:
    """The built-in states."""

    DRAFT = State("draft", description="being prepared; not yet an order")
    PLACED = State("placed", description="received from a channel; awaiting acceptance")
    ON_HOLD = State("on_hold", description="held for one or more reasons; see the order's holds")
    ACCEPTED = State("accepted", description="accepted; nothing allocated yet")
    REJECTED = State("rejected", final=True, description="refused; see the reason")
    PARTIALLY_ALLOCATED = State("partially_allocated", description="some units allocated to stock")
    ALLOCATED = State("allocated", description="every unit allocated to stock")
    BACKORDERED = State("backordered", description="waiting for supply")
    PARTIALLY_RELEASED = State("partially_released", description="some units released to fulfilment")
    RELEASED = State("released", description="every unit released to fulfilment")
    PARTIALLY_SHIPPED = State("partially_shipped", description="some units shipped")
    SHIPPED = State("shipped", description="every unit shipped")
    PARTIALLY_DELIVERED = State("partially_delivered", description="every unit shipped, some delivered")
    DELIVERED = State("delivered", description="every unit delivered")
    PARTIALLY_RETURNED = State("partially_returned", description="delivered, and some units returned")
    RETURNED = State("returned", description="every delivered unit returned")
    COMPLETED = State("completed", final=True, description="closed")
    CANCELLED = State("cancelled", final=True, description="cancelled; see the reason")

    @classmethod
    def all(cls) -> tuple[State, ...]:
        return tuple(v for v in vars(cls).values() if isinstance(v, State))


class Triggers:
    """The built-in triggers."""

    PLACE = Trigger("place")
    ACCEPT = Trigger("accept")
    REJECT = Trigger("reject")
    COMPLETE = Trigger("complete")
    HOLD = Trigger("hold", manual=False)
    RELEASE_HOLD = Trigger("release_hold", manual=False)
    CANCEL = Trigger("cancel", manual=False)
    CANCEL_LINES = Trigger("cancel_lines", manual=False)
    EDIT = Trigger("edit", manual=False)
    ALLOCATE = Trigger("allocate", manual=False)
    BACKORDER = Trigger("backorder", manual=False)
    RELEASE = Trigger("release", manual=False)
    SHIP = Trigger("ship", manual=False)
    DELIVER = Trigger("deliver", manual=False)
    RETURN = Trigger("return", manual=False)
    SOURCE = Trigger("source", manual=False, description="a sourcing plan allocates and backorders units")
    DEALLOCATE = Trigger("deallocate", manual=False, description="allocated units go back to open")

    @classmethod
    def all(cls) -> tuple[Trigger, ...]:
        return tuple(v for v in vars(cls).values() if isinstance(v, Trigger))


def derive_status(q: QuantityTotals) -> State:
    """The status that the order's quantity buckets (summed over lines) say, once the order is accepted."""
    s = OrderStatus
    live = q.ordered - q.cancelled
    if live == 0:
        return s.CANCELLED
    if q.returned == live:
        return s.RETURNED
    done = q.delivered + q.returned
    if done == live:
        return s.PARTIALLY_RETURNED if q.returned else s.DELIVERED
    post = q.shipped + done
    if post == live:
        return s.PARTIALLY_DELIVERED if done else s.SHIPPED
    if post:
        return s.PARTIALLY_SHIPPED
    if q.released == live:
        return s.RELEASED
    if q.released:
        return s.PARTIALLY_RELEASED
    if q.allocated == live:
        return s.ALLOCATED
    if q.allocated:
        return s.PARTIALLY_ALLOCATED
    if q.backordered:
        return s.BACKORDERED
    return s.ACCEPTED


@attrs.frozen
class Lifecycle:
    """A checked state machine. Build it with :meth:`define` or :meth:`extend`; both validate it."""

    name: str
    initial: State
    states: frozenset[State]
    triggers: frozenset[Trigger]
    transitions: tuple[Transition, ...]
    _table: dict[tuple[State, Trigger], Transition] = attrs.field(eq=False, repr=False, hash=False)
    # the same exits keyed by names: strings hash in C, which matters on every transition
    _exits: dict[tuple[str, str], Transition] = attrs.field(
        init=False, eq=False, repr=False, hash=False, factory=dict
    )
    _by_name: dict[str, State] = attrs.field(eq=False, repr=False, hash=False)
    _triggers_by_name: dict[str, Trigger] = attrs.field(eq=False, repr=False, hash=False)

    @classmethod
    def define(
        cls,
        *,
        name: str,
        initial: State,
        states: Iterable[State],
        triggers: Iterable[Trigger],
        transitions: Iterable[Transition],
    ) -> Lifecycle:
        """Build and check a lifecycle; raises :class:`LifecycleDefinitionError` listing every defect."""
        states_l, triggers_l = list(states), list(triggers)
        states_f = frozenset(states_l)
        triggers_f = frozenset(triggers_l)
        transitions_t = tuple(transitions)
        problems: list[str] = []
        by_name: dict[str, State] = {}
        for st in states_l:
            if st.name in by_name and (by_name[st.name].final, by_name[st.name].description) != (
                st.final,
                st.description,
            ):
                problems.append(f"two different states are named {st.name!r}")
            by_name.setdefault(st.name, st)
        trig_by_name: dict[str, Trigger] = {}
        for tr in triggers_l:
            if tr.name in trig_by_name and trig_by_name[tr.name].manual != tr.manual:
                problems.append(f"two different triggers are named {tr.name!r}")
            trig_by_name.setdefault(tr.name, tr)
        if initial not in states_f:
            problems.append(f"initial state {initial} is not among the states")
        table: dict[tuple[State, Trigger], Transition] = {}
        for t in transitions_t:
            if t.trigger not in triggers_f:
                problems.append(f"transition on unknown trigger {t.trigger}")
            if not t.sources:
                problems.append(f"transition on {t.trigger} has no source state")
            if not t.targets:
                problems.append(f"transition on {t.trigger} has no target state")
            for st in sorted(t.sources | t.targets, key=str):
                if st not in states_f:
                    problems.append(f"transition on {t.trigger} names unknown state {st}")
            if t.trigger.manual and len(t.targets) > 1:
                problems.append(
                    f"transition on manual trigger {t.trigger} has {len(t.targets)} targets; it needs exactly one"
                )
            for g in t.guards:
                if not callable(g):
                    problems.append(f"transition on {t.trigger} has a guard that is not callable: {g!r}")
            for src in sorted(t.sources, key=str):
                if src.final:
                    problems.append(f"final state {src} has an exit on {t.trigger}")
                if (src, t.trigger) in table:
                    problems.append(f"two transitions leave {src} on {t.trigger}")
                table[(src, t.trigger)] = t
        # reachability from the initial state
        seen = {initial}
        queue = deque([initial])
        exits: dict[State, set[State]] = {}
        for (src, _), t in table.items():
            exits.setdefault(src, set()).update(t.targets)
        while queue:
            for nxt in exits.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        for st in sorted(states_f - seen, key=str):
            problems.append(f"state {st} cannot be reached from {initial}")
        for st in sorted(states_f, key=str):
            if not st.final and not (exits.get(st, set()) - {st}):
                problems.append(f"state {st} is not final but has no way out")
        if problems:
            raise LifecycleDefinitionError(problems)
        return cls(name, initial, states_f, triggers_f, transitions_t, table, by_name, trig_by_name)

    def extend(
        self,
        *,
        name: str | None = None,
        states: Iterable[State] = (),
        triggers: Iterable[Trigger] = (),
        transitions: Iterable[Transition] = (),
        remove: Iterable[tuple[State, Trigger]] = (),
    ) -> Lifecycle:
        """A new lifecycle with more states, triggers and transitions, and some (source, trigger) exits
        removed; the result is checked like any other."""
        dropped = set(remove)
        kept: list[Transition] = []
        for t in self.transitions:
            sources = frozenset(s for s in t.sources if (s, t.trigger) not in dropped)
            if sources:
                kept.append(attrs.evolve(t, sources=sources))
        unknown = dropped - set(self._table)
        if unknown:
            raise LifecycleDefinitionError(
                f"cannot remove {src} on {trig}: there is no such exit"
                for src, trig in sorted(unknown, key=str)
            )
        return Lifecycle.define(
            name=name or self.name,
            initial=self.initial,
            states=[*sorted(self.states, key=str), *states],
            triggers=[*sorted(self.triggers, key=str), *triggers],
            transitions=(*kept, *transitions),
        )

    # -- queries ------------------------------------------------------------------------------------------
    def state(self, name: str) -> State:
        """The state with this name (used when reading stored orders)."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise InvalidValue(
                f"is not a state of lifecycle {self.name!r}", field="status", value=name
            ) from None

    def trigger(self, name: str) -> Trigger:
        try:
            return self._triggers_by_name[name]
        except (KeyError, TypeError):
            raise InvalidValue(
                f"is not a trigger of lifecycle {self.name!r}", field="trigger", value=name
            ) from None

    def transition(self, state: State, trigger: Trigger) -> Transition | None:
        return self._table.get((state, trigger))

    def allowed_triggers(self, state: State) -> tuple[Trigger, ...]:
        return tuple(sorted({t for (s, t) in self._table if s == state}, key=str))

    def check(self, order: Order, trigger: Trigger, target: State) -> None:
        """Raise :class:`IllegalTransition` unless ``trigger`` may move ``order`` to ``target`` now."""
        self.admit(order, self.exit(order, trigger), target)

    def exit(self, order: Order, trigger: Trigger) -> Transition:
        """The transition that ``trigger`` takes from the order's state, or :class:`IllegalTransition`."""
        t = self._exits.get((order.status.name, trigger.name))
        if t is None:
            detail = None if trigger in self.triggers else "the trigger is not part of this lifecycle"
            raise IllegalTransition(order_id=order.id, state=order.status, trigger=trigger, detail=detail)
        return t

    def admit(self, order: Order, t: Transition, target: State) -> None:
        """Raise :class:`IllegalTransition` unless ``t`` may take ``order`` to ``target`` (its guards agree)."""
        trigger = t.trigger
        if target.name not in t.target_names:
            raise IllegalTransition(order_id=order.id, state=order.status, trigger=trigger, target=target)
        for guard in t.guards:
            if not guard(order):
                raise IllegalTransition(
                    order_id=order.id,
                    state=order.status,
                    trigger=trigger,
                    target=target,
                    failed_guard=getattr(guard, "__name__", repr(guard)),
                )

    def to_mermaid(self) -> str:
        """The machine as a Mermaid ``stateDiagram-v2``, for documentation."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial.name}"]
        edges: dict[tuple[str, str], list[str]] = {}
        for (src, trig), t in self._table.items():
            for dst in t.targets:
                edges.setdefault((src.name, dst.name), []).append(trig.name)
        for (src_name, dst_name), trigs in sorted(edges.items()):
            lines.append(f"    {src_name} --> {dst_name}: {', '.join(sorted(set(trigs)))}")
        for st in sorted(self.states, key=str):
            if st.final:
                lines.append(f"    {st.name} --> [*]")
        return "\n".join(lines)

    def __attrs_post_init__(self) -> None:
        self._exits.update({(s.name, t.name): tr for (s, t), tr in self._table.items()})

    def __repr__(self) -> str:
        return f"Lifecycle({self.name!r}, {len(self.states)} states, {len(self._table)} exits)"


def _build_default() -> Lifecycle:
    s, t = OrderStatus, Triggers
    pre = {s.PLACED, s.ON_HOLD}
    unreleased = {s.ACCEPTED, s.PARTIALLY_ALLOCATED, s.ALLOCATED, s.BACKORDERED}
    released = {s.PARTIALLY_RELEASED, s.RELEASED}
    done = {s.DELIVERED, s.PARTIALLY_RETURNED, s.RETURNED}
    after_shipping = {s.PARTIALLY_SHIPPED, s.SHIPPED, s.PARTIALLY_DELIVERED} | done
    waiting = {s.ACCEPTED, s.PARTIALLY_ALLOCATED, s.BACKORDERED}
    transitions = [
        Transition(t.PLACE, s.DRAFT, s.PLACED),
        Transition(t.ACCEPT, s.PLACED, s.ACCEPTED),
        Transition(t.REJECT, pre, s.REJECTED),
        Transition(t.HOLD, pre | unreleased, s.ON_HOLD),
        Transition(t.RELEASE_HOLD, s.ON_HOLD, {s.ON_HOLD, s.PLACED} | unreleased),
        Transition(t.CANCEL, {s.DRAFT} | pre | unreleased, s.CANCELLED),
        # Before acceptance an edit or a partial cancellation keeps the state (or cancels the order when no
        # unit is left); after acceptance the quantity buckets say where the order is.
        *(Transition(t.CANCEL_LINES, st, {st, s.CANCELLED}) for st in (s.DRAFT, *pre)),
        Transition(t.CANCEL_LINES, unreleased, unreleased | {s.CANCELLED}),
        Transition(t.CANCEL_LINES, s.PARTIALLY_RELEASED, released),
        Transition(t.CANCEL_LINES, s.PARTIALLY_SHIPPED, after_shipping),
        *(Transition(t.EDIT, st, st) for st in (s.DRAFT, *pre)),
        Transition(t.EDIT, unreleased, unreleased),
        Transition(t.ALLOCATE, waiting, {s.PARTIALLY_ALLOCATED, s.ALLOCATED}),
        Transition(t.BACKORDER, waiting, {s.PARTIALLY_ALLOCATED, s.BACKORDERED}),
        Transition(t.SOURCE, waiting, {s.PARTIALLY_ALLOCATED, s.ALLOCATED, s.BACKORDERED}),
        Transition(t.DEALLOCATE, {s.PARTIALLY_ALLOCATED, s.ALLOCATED}, waiting),
        Transition(t.DEALLOCATE, released, released | waiting),
        Transition(t.DEALLOCATE, s.ON_HOLD, s.ON_HOLD),
        Transition(t.RELEASE, {s.PARTIALLY_ALLOCATED, s.ALLOCATED}, released),
        Transition(t.RELEASE, s.PARTIALLY_RELEASED, released),
        *(
            Transition(trig, s.PARTIALLY_RELEASED, s.PARTIALLY_RELEASED)
            for trig in (t.ALLOCATE, t.BACKORDER, t.SOURCE)
        ),
        *(
            Transition(trig, s.PARTIALLY_SHIPPED, s.PARTIALLY_SHIPPED)
            for trig in (t.ALLOCATE, t.BACKORDER, t.RELEASE, t.SOURCE, t.DEALLOCATE)
        ),
        Transition(t.SHIP, unreleased | released, {s.PARTIALLY_SHIPPED, s.SHIPPED}),
        Transition(t.SHIP, s.PARTIALLY_SHIPPED, {s.PARTIALLY_SHIPPED, s.SHIPPED, s.PARTIALLY_DELIVERED}),
        Transition(t.DELIVER, s.PARTIALLY_SHIPPED, s.PARTIALLY_SHIPPED),
        Transition(
            t.DELIVER,
            {s.SHIPPED, s.PARTIALLY_DELIVERED},
            {s.PARTIALLY_DELIVERED, s.DELIVERED, s.PARTIALLY_RETURNED},
        ),
        Transition(t.RETURN, s.PARTIALLY_SHIPPED, s.PARTIALLY_SHIPPED),
        Transition(t.RETURN, s.PARTIALLY_DELIVERED, s.PARTIALLY_DELIVERED),
        Transition(t.RETURN, {s.DELIVERED, s.PARTIALLY_RETURNED}, {s.PARTIALLY_RETURNED, s.RETURNED}),
        Transition(t.COMPLETE, done, s.COMPLETED),
    ]
    return Lifecycle.define(
        name="default",
        initial=s.DRAFT,
        states=s.all(),
        triggers=t.all(),
        transitions=transitions,
    )


#: The built-in order lifecycle. Extend it with :meth:`Lifecycle.extend`.
DEFAULT_LIFECYCLE: Lifecycle = _build_default()
