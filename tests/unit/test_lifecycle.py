"""The lifecycle state machine: checked at definition, extensible, refusing illegal transitions."""

import pytest

from ordercore import (
    DEFAULT_LIFECYCLE,
    Actor,
    FireTrigger,
    IllegalTransition,
    InvalidValue,
    Lifecycle,
    LifecycleDefinitionError,
    ManualClock,
    OrderStatus,
    RejectOrder,
    SequentialIds,
    State,
    Transition,
    Trigger,
    Triggers,
    bootstrap,
)
from ordercore.lifecycle import derive_status
from ordercore.lines import LineQuantities
from tests.unit.factories import AT, make_order, place_command

S, T = OrderStatus, Triggers
ACTOR = Actor.user("tester")


def test_default_lifecycle_has_every_required_state() -> None:
    names = {s.name for s in DEFAULT_LIFECYCLE.states}
    required = {
        "draft", "placed", "on_hold", "accepted", "rejected", "partially_allocated", "allocated",
        "backordered", "released", "partially_shipped", "shipped", "delivered", "completed", "cancelled",
        "partially_returned", "returned",
    }  # fmt: skip
    assert required <= names
    assert {s.name for s in DEFAULT_LIFECYCLE.states if s.final} == {"rejected", "cancelled", "completed"}


def _define(**overrides: object) -> Lifecycle:
    a, b, c = State("a"), State("b"), State("c", final=True)
    go, stop = Trigger("go"), Trigger("stop")
    args: dict[str, object] = {
        "name": "t",
        "initial": a,
        "states": [a, b, c],
        "triggers": [go, stop],
        "transitions": [Transition(go, a, b), Transition(stop, b, c)],
    }
    args.update(overrides)
    return Lifecycle.define(**args)  # type: ignore[arg-type]


def test_a_consistent_machine_is_accepted() -> None:
    lc = _define()
    assert lc.state("b") == State("b")
    assert lc.allowed_triggers(State("a")) == (Trigger("go"),)


def test_definition_reports_every_defect_at_once() -> None:
    a, b, c, island = State("a"), State("b"), State("c", final=True), State("island")
    go, stop, ghost = Trigger("go"), Trigger("stop"), Trigger("ghost")
    with pytest.raises(LifecycleDefinitionError) as err:
        Lifecycle.define(
            name="broken",
            initial=a,
            states=[a, b, c, island],
            triggers=[go, stop],
            transitions=[
                Transition(go, a, b),
                Transition(stop, b, c),
                Transition(go, c, a),  # exit from a final state
                Transition(ghost, b, State("nowhere")),  # unknown trigger and unknown state
                Transition(go, a, c),  # two exits from a on go
            ],
        )
    text = "\n".join(err.value.problems)
    assert "final state c has an exit on go" in text
    assert "unknown trigger ghost" in text
    assert "unknown state nowhere" in text
    assert "two transitions leave a on go" in text
    assert "state island cannot be reached from a" in text
    assert "state island is not final but has no way out" in text
    assert err.value.code == "lifecycle_definition"


def test_unknown_initial_state_and_duplicate_names_are_refused() -> None:
    with pytest.raises(LifecycleDefinitionError, match="initial state z"):
        _define(initial=State("z"))
    a, b, c = State("a"), State("b"), State("c", final=True)
    with pytest.raises(LifecycleDefinitionError, match="two different states are named 'b'"):
        _define(states=[a, b, c, State("b", description="other")])


def test_dead_end_state_is_refused() -> None:
    a, b = State("a"), State("b")
    go = Trigger("go")
    with pytest.raises(LifecycleDefinitionError, match="state b is not final but has no way out"):
        Lifecycle.define(
            name="x", initial=a, states=[a, b], triggers=[go], transitions=[Transition(go, a, b)]
        )


def test_state_lookup_by_unknown_name_is_a_typed_error() -> None:
    with pytest.raises(InvalidValue) as err:
        DEFAULT_LIFECYCLE.state("nope")
    assert err.value.field == "status"


@pytest.mark.parametrize(
    ("quantities", "expected"),
    [
        (LineQuantities(ordered=3, open=3), S.ACCEPTED),
        (LineQuantities(ordered=3, open=1, backordered=2), S.BACKORDERED),
        (LineQuantities(ordered=3, open=1, allocated=2), S.PARTIALLY_ALLOCATED),
        (LineQuantities(ordered=3, open=0, allocated=2, cancelled=1), S.ALLOCATED),
        (LineQuantities(ordered=3, open=0, allocated=2, released=1), S.PARTIALLY_RELEASED),
        (LineQuantities(ordered=3, open=0, released=3), S.RELEASED),
        (LineQuantities(ordered=3, open=1, shipped=2), S.PARTIALLY_SHIPPED),
        (LineQuantities(ordered=3, open=0, shipped=3), S.SHIPPED),
        (LineQuantities(ordered=3, open=0, shipped=1, delivered=2), S.PARTIALLY_DELIVERED),
        (LineQuantities(ordered=3, open=0, delivered=3), S.DELIVERED),
        (LineQuantities(ordered=3, open=0, delivered=2, returned=1), S.PARTIALLY_RETURNED),
        (LineQuantities(ordered=3, open=0, returned=2, cancelled=1), S.RETURNED),
        (LineQuantities(ordered=3, open=0, cancelled=3), S.CANCELLED),
    ],
)
def test_status_is_derived_from_the_buckets(quantities: LineQuantities, expected: State) -> None:
    assert derive_status(quantities) == expected


def test_illegal_transition_carries_context_and_changes_nothing() -> None:
    order = make_order()
    order.reject(actor=ACTOR, at=AT, reason="fraud", code="FRAUD")
    before = order.clone()
    with pytest.raises(IllegalTransition) as err:
        order.accept(actor=ACTOR, at=AT)
    assert err.value.order_id == order.id
    assert err.value.state == S.REJECTED
    assert err.value.trigger == T.ACCEPT
    assert err.value.to_dict()["code"] == "illegal_transition"
    assert order == before
    with pytest.raises(IllegalTransition):
        order.ship(shipment_id="S1", actor=ACTOR, at=AT)
    assert order == before


def test_fire_refuses_triggers_that_belong_to_an_order_method() -> None:
    order = make_order()
    with pytest.raises(InvalidValue, match="cannot be fired directly"):
        order.fire(T.SHIP, actor=ACTOR, at=AT)


def test_fire_refuses_a_trigger_not_in_the_lifecycle() -> None:
    order = make_order()
    with pytest.raises(IllegalTransition, match="not part of this lifecycle"):
        order.fire(Trigger("teleport"), actor=ACTOR, at=AT)


@pytest.mark.parametrize("given", [None, "ship", 5])
def test_fire_refuses_what_is_not_a_trigger_and_the_order_stays_as_it_was(given: object) -> None:
    order = make_order()
    before = order.clone()
    with pytest.raises(InvalidValue) as err:
        order.fire(given, actor=ACTOR, at=AT)  # type: ignore[arg-type]
    assert err.value.field == "trigger"
    assert order == before


def test_a_fire_trigger_command_with_no_trigger_is_refused() -> None:
    app = bootstrap(clock=ManualClock(AT), ids=SequentialIds())
    order_id = app.handle(place_command()).order_id
    with pytest.raises(InvalidValue) as err:
        app.handle(FireTrigger(order_id=order_id, trigger="review"))  # type: ignore[arg-type]
    assert err.value.field == "trigger"
    assert app.get_order(order_id).version == 2


# -- extension ------------------------------------------------------------------------------------------
REVIEW = State("awaiting_fraud_review")
SEND = Trigger("send_to_fraud_review")
CLEAR = Trigger("clear_fraud_review")


def _with_review(guard: object = None) -> Lifecycle:
    guards = [guard] if guard else []
    return DEFAULT_LIFECYCLE.extend(
        name="with-review",
        states=[REVIEW],
        triggers=[SEND, CLEAR],
        transitions=[
            Transition(SEND, S.PLACED, REVIEW, guards=guards),
            Transition(CLEAR, REVIEW, S.PLACED),
            Transition(T.REJECT, REVIEW, S.REJECTED),
            Transition(T.CANCEL, REVIEW, S.CANCELLED),
        ],
    )


def test_users_can_add_a_state_without_forking() -> None:
    lc = _with_review()
    order = make_order(lifecycle=lc)
    order.fire(SEND, actor=ACTOR, at=AT, reason="score 87")
    assert order.status == REVIEW
    with pytest.raises(IllegalTransition):
        order.accept(actor=ACTOR, at=AT)
    order.fire(CLEAR, actor=ACTOR, at=AT)
    order.accept(actor=ACTOR, at=AT)
    assert order.status == S.ACCEPTED
    # the default machine is untouched
    assert REVIEW not in DEFAULT_LIFECYCLE.states


def test_guards_are_plain_callables_and_name_themselves_when_they_refuse() -> None:
    def only_big_orders(order: object) -> bool:
        return False

    lc = _with_review(only_big_orders)
    order = make_order(lifecycle=lc)
    with pytest.raises(IllegalTransition) as err:
        order.fire(SEND, actor=ACTOR, at=AT)
    assert err.value.failed_guard == "only_big_orders"
    assert order.status == S.PLACED and order.version == 2


def test_extension_can_remove_a_built_in_exit() -> None:
    lc = _with_review().extend(
        remove=[(S.PLACED, T.ACCEPT)], transitions=[Transition(T.ACCEPT, REVIEW, S.ACCEPTED)]
    )
    order = make_order(lifecycle=lc)
    with pytest.raises(IllegalTransition):
        order.accept(actor=ACTOR, at=AT)
    order.fire(SEND, actor=ACTOR, at=AT)
    order.accept(actor=ACTOR, at=AT)
    assert order.status == S.ACCEPTED


def test_removing_an_exit_that_does_not_exist_is_refused() -> None:
    with pytest.raises(LifecycleDefinitionError, match="no such exit"):
        DEFAULT_LIFECYCLE.extend(remove=[(S.COMPLETED, T.ACCEPT)])


def test_an_extension_that_breaks_the_machine_is_refused() -> None:
    with pytest.raises(LifecycleDefinitionError, match="cannot be reached"):
        DEFAULT_LIFECYCLE.extend(
            states=[REVIEW], triggers=[CLEAR], transitions=[Transition(CLEAR, REVIEW, S.PLACED)]
        )


def test_extended_lifecycle_through_the_application() -> None:
    lc = _with_review()
    app = bootstrap(lifecycle=lc, strict=True)
    order_id = app.handle(place_command()).order_id
    app.handle(FireTrigger(order_id=order_id, trigger=SEND, reason="manual review"))
    app.handle(RejectOrder(order_id=order_id, reason="confirmed fraud", code="FRAUD"))
    order = app.get_order(order_id)
    assert [e.status.name for e in order.history] == ["draft", "placed", "awaiting_fraud_review", "rejected"]


def test_mermaid_diagram_lists_every_exit() -> None:
    text = DEFAULT_LIFECYCLE.to_mermaid()
    assert text.startswith("stateDiagram-v2")
    assert "placed --> accepted: accept" in text
    assert "completed --> [*]" in text


def test_a_manual_trigger_needs_a_single_target() -> None:
    a, b, c = State("a"), State("b"), State("c", final=True)
    go = Trigger("go")
    with pytest.raises(LifecycleDefinitionError, match="manual trigger go has 2 targets"):
        Lifecycle.define(
            name="x",
            initial=a,
            states=[a, b, c],
            triggers=[go],
            transitions=[Transition(go, a, {b, c}), Transition(go, b, c)],
        )


def test_states_and_triggers_are_identified_by_name() -> None:
    assert State("placed") == OrderStatus.PLACED
    assert Trigger("accept", description="other words") == Triggers.ACCEPT
