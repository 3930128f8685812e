"""The rule model: a rule is a condition with an outcome; a rule set is an ordered, versioned list of rules.

A rule whose condition holds for an order *matches*, and its outcome applies: ``HOLD`` puts the order on
hold with the rule's reason code, ``REJECT`` rejects it, ``ACCEPT`` vouches for it (the remaining rules of
its stage are skipped). Rules run stage by stage (intake, fraud, credit, inventory, fulfilment by default),
by descending priority and then id within a stage. The decision is ``reject`` when a rule rejects (later
rules are skipped), else ``hold`` when at least one rule holds (holds stack), else ``accept``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ordercore.errors import InvalidRuleSet, RuleEvaluationFailed, RuleProblem

__all__ = [
    "DEFAULT_STAGES",
    "Condition",
    "MessageTemplate",
    "Outcome",
    "PythonCondition",
    "Rule",
    "RuleSet",
    "Stage",
]


class Outcome(enum.Enum):
    """What a matching rule does to the order."""

    ACCEPT = "accept"
    HOLD = "hold"
    REJECT = "reject"


class Stage:
    """The built-in stages, in the order they run. A rule set may declare stages of its own."""

    INTAKE = "intake"
    FRAUD = "fraud"
    CREDIT = "credit"
    INVENTORY = "inventory"
    FULFILMENT = "fulfilment"


DEFAULT_STAGES: tuple[str, ...] = (
    Stage.INTAKE,
    Stage.FRAUD,
    Stage.CREDIT,
    Stage.INVENTORY,
    Stage.FULFILMENT,
)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@runtime_checkable
class Condition(Protocol):
    """What a rule tests. A compiled expression is one; :class:`PythonCondition` wraps a Python callable.

    ``evaluate`` returns a bool or raises :class:`ordercore.RuleEvaluationFailed`; ``inputs`` returns the
    values the condition reads (dotted path to value) and never raises."""

    @property
    def source(self) -> str: ...

    @property
    def paths(self) -> tuple[str, ...]: ...

    def evaluate(self, ctx: Any) -> Any: ...

    def inputs(self, ctx: Any) -> dict[str, object]: ...


def _runner(condition: Condition) -> Callable[[Any], Any]:
    """What the engine calls to test a condition: a compiled expression's own function (the engine turns
    what it raises into the rule's error), or the condition's ``evaluate``."""
    function = getattr(condition, "function", None)
    return function if callable(function) else condition.evaluate


def _resolve(ctx: Any, path: str) -> object:
    value = ctx
    for name in path.split("."):
        value = getattr(value, name)
    return value


@attrs.frozen
class PythonCondition:
    """A condition written in Python, for what an expression cannot say.

    ``check(ctx)`` returns True when the rule matches. ``paths`` are the context paths it reads (reported as
    its inputs); ``explain(ctx)``, when given, returns extra inputs of its own (``{"duplicate_of": "O-7"}``).
    Anything the callable raises is recorded as the rule's error, never propagated."""

    check: Callable[[Any], bool]
    name: str
    paths: tuple[str, ...] = ()
    explain: Callable[[Any], Mapping[str, object]] | None = None

    @property
    def source(self) -> str:
        return f"python:{self.name}"

    def evaluate(self, ctx: Any) -> bool:
        try:
            result = self.check(ctx)
        except RuleEvaluationFailed:
            raise
        except Exception as e:  # a user's callable: whatever it raises becomes the rule's error
            raise RuleEvaluationFailed(f"{self.name} failed: {type(e).__name__}: {e}") from e
        if not isinstance(result, bool):  # None (a forgotten return), 0, "no": a bug, never a pass
            raise RuleEvaluationFailed(
                f"{self.name} returned {type(result).__name__} {result!r:.80}, not True or False"
            )
        return result

    def inputs(self, ctx: Any) -> dict[str, object]:
        seen: dict[str, object] = {}
        for path in self.paths:
            try:
                seen[path] = _resolve(ctx, path)
            except Exception:  # an input that cannot be read is reported as missing
                seen[path] = None
        if self.explain is not None:
            try:
                seen.update(self.explain(ctx))
            except Exception as e:
                seen["explain_error"] = f"{type(e).__name__}: {e}"
        return seen


@attrs.frozen
class MessageTemplate:
    """A message with ``{expression}`` placeholders rendered from the order's context
    (``"order total {order.total} over {customer.credit_limit}"``). Each placeholder is an expression of
    the condition language, checked when the rule set loads; ``{{`` and ``}}`` are literal braces."""

    text: str
    parts: tuple[str | Condition, ...]

    def render(self, ctx: Any) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                out.append(format_value(part.evaluate(ctx)))
            except Exception:  # a message never fails a decision
                out.append("?")
        return "".join(out)


def format_value(value: object) -> str:
    """How a value reads in messages and recorded inputs: money as ``120.00 EUR``, text quoted."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


@attrs.frozen
class Rule:
    """One business rule. ``reason_code`` is required for hold and reject outcomes; ``channels`` and
    ``segments`` (empty: all) scope it; ``enabled=False`` keeps it in the set but never evaluates it."""

    id: str
    condition: Condition
    outcome: Outcome
    reason_code: str = ""
    stage: str = Stage.INTAKE
    priority: int = 0
    description: str = ""
    message: MessageTemplate | None = None
    channels: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    enabled: bool = True

    def problems(self) -> list[RuleProblem]:
        """What is wrong with this rule on its own (an empty list when nothing is)."""
        found: list[RuleProblem] = []

        def bad(code: str, message: str) -> None:
            found.append(RuleProblem(str(self.id), code, message))

        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            bad(
                "bad_rule_id",
                "a rule id is 1 to 64 letters, digits or _ . : - and starts with one of the first two",
            )
        if not isinstance(self.outcome, Outcome):
            bad("bad_outcome", f"outcome must be one of {[o.value for o in Outcome]}")
        elif self.outcome is not Outcome.ACCEPT and not _ID.fullmatch(str(self.reason_code or "")):
            bad(
                "missing_reason",
                f"a {self.outcome.value} rule needs a reason code (letters, digits, _ . : -)",
            )
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            bad("bad_priority", "priority must be an integer")
        if not isinstance(self.condition, Condition):
            bad("bad_condition", "the condition must be an expression or a Python condition")
        return found

    def applies_to(self, channel: str, segment: str) -> bool:
        return (not self.channels or channel in self.channels) and (
            not self.segments or segment in self.segments
        )


@attrs.frozen
class RuleSet:
    """A named, versioned set of rules, checked when built: every problem is reported at once.

    ``on_error`` says what a rule that fails while running does: ``"hold"`` (the default) holds the order
    with reason ``rule_error`` for a person to look at; ``"ignore"`` records the error and goes on."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    stages: tuple[str, ...] = DEFAULT_STAGES
    on_error: str = "hold"
    ordered: tuple[Rule, ...] = attrs.field(init=False, eq=False, repr=False)
    #: per rule in order: the rule, its stage, the callable to run (None when disabled) and whether it is
    #: scoped; worked out once, so evaluating a set does no more than it must per rule
    plan: tuple[tuple[Rule, str, Callable[[Any], Any] | None, bool], ...] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        problems: list[RuleProblem] = []
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(RuleProblem("", "bad_rule_set", "a rule set needs a name"))
        if not isinstance(self.version, str) or not self.version.strip():
            problems.append(RuleProblem("", "bad_rule_set", "a rule set needs a version"))
        if self.on_error not in ("hold", "ignore"):
            problems.append(RuleProblem("", "bad_rule_set", "on_error must be 'hold' or 'ignore'"))
        if len(set(self.stages)) != len(self.stages):
            problems.append(RuleProblem("", "bad_stage", f"stages are listed twice in {list(self.stages)}"))
        seen: set[str] = set()
        for rule in self.rules:
            problems.extend(rule.problems())
            if rule.id in seen:
                problems.append(RuleProblem(str(rule.id), "duplicate_rule", "another rule has this id"))
            seen.add(rule.id)
            if rule.stage not in self.stages:
                problems.append(
                    RuleProblem(
                        str(rule.id),
                        "unknown_stage",
                        f"stage {rule.stage!r} is not one of {list(self.stages)}",
                    )
                )
        if problems:
            raise InvalidRuleSet(problems)
        rank = {s: i for i, s in enumerate(self.stages)}
        ordered = sorted(self.rules, key=lambda r: (rank[r.stage], -r.priority, r.id))
        object.__setattr__(self, "ordered", tuple(ordered))
        object.__setattr__(
            self,
            "plan",
            tuple(
                (r, r.stage, _runner(r.condition) if r.enabled else None, bool(r.channels or r.segments))
                for r in ordered
            ),
        )

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def with_rules(self, rules: Iterable[Rule], *, version: str | None = None) -> RuleSet:
        """A copy with ``rules`` added (replacing rules of the same id)."""
        new = {r.id: r for r in self.rules}
        new.update({r.id: r for r in rules})
        return RuleSet(self.name, version or self.version, tuple(new.values()), self.stages, self.on_error)

    def codes(self, stages: Sequence[str] | None = None) -> frozenset[str]:
        """The hold and reject reason codes this set can give (of ``stages`` only, when given)."""
        return frozenset(
            r.reason_code
            for r in self.rules
            if r.outcome is not Outcome.ACCEPT and (stages is None or r.stage in stages)
        )
