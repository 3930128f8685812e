"""The composition root: builds an application from a store and the adapters you pass. Nothing here runs
at import time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ordercore.clock import SystemClock
from ordercore.errors import InvalidValue, Problem, ValidationFailed
from ordercore.events import OrderEvent
from ordercore.ids import UuidIds
from ordercore.inventory import FulfilmentNetwork, FulfilmentNode
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.order import Order
from ordercore.ports import (
    AddressValidator,
    Clock,
    CrmGateway,
    CustomerDirectory,
    ErpGateway,
    EventPublisher,
    FraudScorer,
    Geocoder,
    IdGenerator,
    Notifier,
    PaymentGateway,
    PaymentRecords,
    ProductCatalog,
    RecentOrders,
    Store,
    TaxCalculator,
    TmsGateway,
    WmsGateway,
)
from ordercore.rules.model import RuleSet
from ordercore.service.application import OrderCore
from ordercore.service.commands import Command
from ordercore.service.handlers import COMMAND_HANDLERS, Handler, Services
from ordercore.service.inventory import INVENTORY_HANDLERS
from ordercore.service.messagebus import EventHandler, HandlerFailure, MessageBus, check_event_handlers
from ordercore.service.sourcing import default_policy
from ordercore.service.stores import open_store
from ordercore.sourcing import STRATEGIES, SourcingPolicy, SourcingStrategy

__all__ = ["bootstrap"]


def bootstrap(
    store: str | Store = "memory://",
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    publisher: EventPublisher | None = None,
    event_handlers: Mapping[type[OrderEvent], Iterable[EventHandler]] | None = None,
    command_handlers: Mapping[type[Command], Handler] | None = None,
    strict: bool = False,
    on_failure: Callable[[HandlerFailure], None] | None = None,
    payment: PaymentGateway | None = None,
    erp: ErpGateway | None = None,
    wms: WmsGateway | None = None,
    tms: TmsGateway | None = None,
    crm: CrmGateway | None = None,
    tax: TaxCalculator | None = None,
    notifier: Notifier | None = None,
    network: FulfilmentNetwork | Iterable[FulfilmentNode] | None = None,
    strategies: Mapping[str, SourcingStrategy] | None = None,
    default_strategy: str = "cost_optimal",
    sourcing_policy: Callable[[Order], SourcingPolicy] = default_policy,
    geocoder: Geocoder | None = None,
    conflict_retries: int = 3,
    unavailable_retries: int = 2,
    rules: RuleSet | None = None,
    customers: CustomerDirectory | None = None,
    catalog: ProductCatalog | None = None,
    fraud: FraudScorer | None = None,
    payments: PaymentRecords | None = None,
    recent_orders: RecentOrders | None = None,
    address_validator: AddressValidator | None = None,
) -> OrderCore:
    """Build an :class:`OrderCore`. ``store`` is a URL (``memory://`` by default) or an opened store.

    Extra ``command_handlers`` are added to (and may replace) the built-in ones; extra ``strategies`` are
    added to (and may replace) the built-in sourcing strategies. ``network`` lists the fulfilment nodes
    that orders are sourced from. A command that loses a race with another writer (ConcurrencyConflict)
    runs again up to ``conflict_retries`` times, unless it carries ``expected_version``; one whose store
    failed before writing anything, in a way another attempt may well get past (a retryable
    StoreUnavailable: a pooled connection found broken, a transaction the database rolled back), runs
    again up to ``unavailable_retries`` times (see :mod:`ordercore.service.messagebus`).

    With ``rules`` (a :class:`~ordercore.rules.RuleSet`), every order placed is evaluated: accepted, held
    with reason codes or rejected, with the decision recorded on the order. ``customers``, ``catalog``,
    ``fraud``, ``payments`` and ``recent_orders`` are the ports rules read through (the store answers for
    recent orders when it can; ``erp`` gives open balances); ``address_validator`` replaces the built-in
    address checks.
    """
    if not isinstance(store, str) and not callable(getattr(store, "unit_of_work", None)):
        raise InvalidValue("must be a store URL or an opened store", field="store", value=store)
    # every other argument is checked before the store is opened (which may create a file or a schema)
    ports: dict[str, tuple[object, type]] = {
        "clock": (clock, Clock),
        "ids": (ids, IdGenerator),
        "publisher": (publisher, EventPublisher),
        "payment": (payment, PaymentGateway),
        "erp": (erp, ErpGateway),
        "wms": (wms, WmsGateway),
        "tms": (tms, TmsGateway),
        "crm": (crm, CrmGateway),
        "tax": (tax, TaxCalculator),
        "notifier": (notifier, Notifier),
        "geocoder": (geocoder, Geocoder),
        "customers": (customers, CustomerDirectory),
        "catalog": (catalog, ProductCatalog),
        "fraud": (fraud, FraudScorer),
        "payments": (payments, PaymentRecords),
        "recent_orders": (recent_orders, RecentOrders),
        "address_validator": (address_validator, AddressValidator),
    }
    problems = [p for field, (value, port) in ports.items() for p in _port_problems(field, value, port)]
    if not isinstance(lifecycle, Lifecycle):
        problems.append(Problem("lifecycle", InvalidValue.code, "must be a Lifecycle", lifecycle))
    if rules is not None and not isinstance(rules, RuleSet):
        problems.append(Problem("rules", InvalidValue.code, "must be a RuleSet or None", rules))
    if not isinstance(strict, bool):
        problems.append(Problem("strict", InvalidValue.code, "must be true or false", strict))
    functions: tuple[tuple[str, object], ...] = (
        ("on_failure", on_failure),
        ("sourcing_policy", sourcing_policy),
    )
    for field, function in functions:
        if function is not None and not callable(function):
            problems.append(Problem(field, InvalidValue.code, "must be callable", function))
    mappings: tuple[tuple[str, object], ...] = (
        ("event_handlers", event_handlers),
        ("command_handlers", command_handlers),
        ("strategies", strategies),
    )
    for field, mapping in mappings:
        if mapping is not None and not isinstance(mapping, Mapping):
            problems.append(Problem(field, InvalidValue.code, "must be a mapping", mapping))
    subscriptions: dict[type[OrderEvent], list[EventHandler]] = {}
    if isinstance(event_handlers, Mapping):
        try:  # each value a list of handlers (not one function), each key an event class
            subscriptions = dict(check_event_handlers(event_handlers))
        except InvalidValue as e:
            problems.append(e.problem())
    ValidationFailed.raise_for(problems, subject="bootstrap")
    opened = open_store(store, lifecycle=lifecycle) if isinstance(store, str) else store
    services = Services(
        clock=clock or SystemClock(),
        ids=ids or UuidIds(),
        lifecycle=lifecycle,
        payment=payment,
        erp=erp,
        wms=wms,
        tms=tms,
        crm=crm,
        tax=tax,
        notifier=notifier,
        network=network if isinstance(network, FulfilmentNetwork | None) else FulfilmentNetwork(network),
        strategies={**STRATEGIES, **(strategies or {})},
        default_strategy=default_strategy,
        sourcing_policy=sourcing_policy,
        geocoder=geocoder,
        rules=rules,
        customers=customers,
        catalog=catalog,
        fraud=fraud,
        payments=payments,
        recent_orders=recent_orders,
        address_validator=address_validator,
    )
    services.strategy()  # an unknown default strategy is refused now, not at the first order
    bus = MessageBus(
        opened.unit_of_work,
        services,
        command_handlers={**COMMAND_HANDLERS, **INVENTORY_HANDLERS, **(command_handlers or {})},
        event_handlers=subscriptions,
        publisher=publisher,
        strict=strict,
        on_failure=on_failure,
        conflict_retries=conflict_retries,
        unavailable_retries=unavailable_retries,
    )
    return OrderCore(opened, bus)


def _port_problems(field: str, value: object, port: type) -> list[Problem]:
    """Nothing for None (the port is not used) or a value with every method of ``port``; otherwise the
    problem, naming the methods it lacks."""
    if value is None:
        return []
    methods = [name for name, member in vars(port).items() if not name.startswith("_") and callable(member)]
    missing = [name for name in methods if not callable(getattr(value, name, None))]
    if not missing:
        return []
    lacks = ", ".join(missing)
    return [Problem(field, InvalidValue.code, f"must implement {port.__name__} (it has no {lacks})", value)]
