"""Evaluating a rule set: which rules match an order, what they decide, and why.

:func:`evaluate` is pure: it reads the context (see :mod:`ordercore.rules.context`) and returns a
:class:`Decision`. With ``explain=True`` (the default) every rule gets a :class:`~ordercore.RuleVerdict` with
the inputs it saw; without, only the rules that matched or failed do (the fast path, for what-if runs over
many orders and for benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ordercore.errors import RuleEvaluationFailed
from ordercore.events import RulesEvaluated, RuleVerdict
from ordercore.rules.language import CompiledExpression
from ordercore.rules.model import Outcome, Rule, RuleSet, format_value

__all__ = ["RULE_ERROR", "Decision", "changed_decisions", "evaluate", "explain", "explain_verdicts"]

#: The hold code of an order held because a rule failed while running (with ``on_error="hold"``).
RULE_ERROR = "rule_error"


@attrs.frozen
class Decision:
    """What a rule set decided: ``outcome``, the holds (code and message, in evaluation order, one per
    code), the rejection (code and message) if any, and the verdicts that explain it."""

    rule_set: str
    version: str
    outcome: Outcome
    holds: tuple[tuple[str, str], ...]
    rejection: tuple[str, str] | None
    verdicts: tuple[RuleVerdict, ...]

    @property
    def fired(self) -> tuple[RuleVerdict, ...]:
        """The verdicts of the rules that matched."""
        return tuple(v for v in self.verdicts if v.matched)

    @property
    def hold_codes(self) -> frozenset[str]:
        return frozenset(code for code, _ in self.holds)

    def explain(self) -> str:
        """A readable account: the decision, then one line per rule with its inputs."""
        return explain_verdicts(f"{self.rule_set} v{self.version}: {self.outcome.value}", self.verdicts)


def explain(event: RulesEvaluated) -> str:
    """The account of a decision recorded on an order (a ``RulesEvaluated`` event), as
    :meth:`Decision.explain` gives it."""
    title = f"{event.rule_set} v{event.rule_set_version}: {event.decision}"
    return explain_verdicts(title + (f" ({event.reason})" if event.reason else ""), event.verdicts)


def explain_verdicts(title: str, verdicts: Iterable[RuleVerdict]) -> str:
    """``title``, then one line per verdict (with its inputs on the next line)."""
    out = [title]
    for v in verdicts:
        if v.skipped:
            out.append(f"  - {v.rule_id} [{v.stage}] skipped: {v.skipped}")
            continue
        mark = "ERROR" if v.error else ("MATCH" if v.matched else "no match")
        head = f"  - {v.rule_id} [{v.stage}] {mark}"
        if v.matched or v.error:
            head += f" -> {v.outcome}" + (f" {v.code}" if v.code else "")
        if v.message and v.matched:
            head += f": {v.message}"
        if v.error:
            head += f": {v.error}"
        out.append(head)
        if v.inputs:
            out.append("      " + ", ".join(f"{path} = {value}" for path, value in v.inputs))
    return "\n".join(out)


def _inputs(rule: Rule, ctx: Any) -> tuple[tuple[str, str], ...]:
    try:
        seen = rule.condition.inputs(ctx)
    except Exception:  # inputs are for the explanation; they never fail a decision
        return ()
    return tuple((path, format_value(value)) for path, value in seen.items())


def _error_text(rule: Rule, e: Exception) -> str:
    """What a failed rule's verdict says, as the condition's own ``evaluate`` would have put it."""
    if isinstance(rule.condition, CompiledExpression):
        detail = e.message if isinstance(e, RuleEvaluationFailed) else f"{type(e).__name__}: {e}"
        return f"{rule.condition.source!r}: {detail}"
    return e.message if isinstance(e, RuleEvaluationFailed) else f"{type(e).__name__}: {e}"


def _message(rule: Rule, ctx: Any) -> str:
    if rule.message is not None:
        return rule.message.render(ctx)
    return rule.description


def evaluate(rule_set: RuleSet, ctx: Any, *, explain: bool = True) -> Decision:
    """Run ``rule_set`` over the context ``ctx`` (built by :func:`ordercore.rules.order_context`, or any
    object with the schema's fields)."""
    channel: str = ctx.order.channel
    segment: str = ctx.customer.segment
    holds: dict[str, str] = {}
    rejection: tuple[str, str] | None = None
    verdicts: list[RuleVerdict] = []
    accepted_in: str | None = None  # a stage vouched for by an accept rule
    accepted_by = rejected_by = ""
    for rule, stage, check, scoped in rule_set.plan:
        if (
            rejection is not None
            or accepted_in == stage
            or check is None
            or (scoped and not rule.applies_to(channel, segment))
        ):
            if explain:
                if check is None:
                    skipped = "disabled"
                elif rejection is not None:
                    skipped = f"order rejected by {rejected_by}"
                elif accepted_in == stage:
                    skipped = f"stage accepted by {accepted_by}"
                else:
                    skipped = "out of scope (channel or segment)"
                verdicts.append(
                    RuleVerdict(rule.id, stage, False, rule.outcome.value, rule.reason_code, skipped=skipped)
                )
            continue
        try:
            matched = check(ctx) is True
        except Exception as e:  # a compiled condition's raw function raises what Python raises
            error = _error_text(rule, e)
            verdicts.append(
                RuleVerdict(
                    rule.id,
                    stage,
                    False,
                    rule.outcome.value,
                    rule.reason_code,
                    inputs=_inputs(rule, ctx) if explain else (),
                    error=error,
                )
            )
            if rule_set.on_error == "hold":
                holds.setdefault(RULE_ERROR, f"rule {rule.id} could not be evaluated: {error}")
            continue
        if not matched:
            if explain:
                verdicts.append(
                    RuleVerdict(
                        rule.id, stage, False, rule.outcome.value, rule.reason_code, inputs=_inputs(rule, ctx)
                    )
                )
            continue
        message = _message(rule, ctx)
        verdicts.append(
            RuleVerdict(
                rule.id,
                stage,
                True,
                rule.outcome.value,
                rule.reason_code,
                message,
                inputs=_inputs(rule, ctx) if explain else (),
            )
        )
        outcome = rule.outcome
        if outcome is Outcome.REJECT:
            rejection, rejected_by = (rule.reason_code, message), rule.id
        elif outcome is Outcome.HOLD:
            holds.setdefault(rule.reason_code, message)
        else:
            accepted_in, accepted_by = stage, rule.id
    if rejection is not None:
        decided = Outcome.REJECT
    elif holds:
        decided = Outcome.HOLD
    else:
        decided = Outcome.ACCEPT
    return Decision(
        rule_set.name,
        rule_set.version,
        decided,
        tuple(holds.items()),
        rejection,
        tuple(verdicts),
    )


def changed_decisions(
    before: Iterable[tuple[Any, Decision]], after: Iterable[tuple[Any, Decision]]
) -> list[tuple[Any, Decision, Decision]]:
    """Pairs of decisions (keyed alike, in the order of ``before``) whose outcome, hold codes or rejection
    differ."""
    later = dict(after)
    changed = []
    for key, old in before:
        new = later.get(key)
        if new is None:
            continue
        if (old.outcome, old.hold_codes, old.rejection and old.rejection[0]) != (
            new.outcome,
            new.hold_codes,
            new.rejection and new.rejection[0],
        ):
            changed.append((key, old, new))
    return changed
