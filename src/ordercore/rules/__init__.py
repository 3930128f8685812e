"""Business rules as data: conditions, outcomes, rule sets and the engine that evaluates orders.

Write rules in TOML or JSON (:func:`load_rules`), in the condition language
(:func:`compile_condition`), as built-ins (:func:`builtin_rule`) or as Python
(:class:`PythonCondition`); :func:`evaluate` decides about an order's context
(:func:`order_context`) and explains why. See docs/rules.md and docs/rules-language.md.
"""

from ordercore.rules.builtin import BUILTINS, POSTAL_CODE_FORMATS, Builtin, builtin_rule, parse_duration
from ordercore.rules.context import ORDER_SCHEMA, OrderContext, RuleInputs, is_po_box, order_context
from ordercore.rules.engine import RULE_ERROR, Decision, changed_decisions, evaluate, explain
from ordercore.rules.language import CompiledExpression, Limits, Schema, compile_expression
from ordercore.rules.loader import MAX_RULES, MAX_TEXT, compile_condition, compile_message, load_rules
from ordercore.rules.model import (
    DEFAULT_STAGES,
    Condition,
    MessageTemplate,
    Outcome,
    PythonCondition,
    Rule,
    RuleSet,
    Stage,
    format_value,
)

__all__ = [
    "BUILTINS",
    "DEFAULT_STAGES",
    "MAX_RULES",
    "MAX_TEXT",
    "ORDER_SCHEMA",
    "POSTAL_CODE_FORMATS",
    "RULE_ERROR",
    "Builtin",
    "CompiledExpression",
    "Condition",
    "Decision",
    "Limits",
    "MessageTemplate",
    "OrderContext",
    "Outcome",
    "PythonCondition",
    "Rule",
    "RuleInputs",
    "RuleSet",
    "Schema",
    "Stage",
    "builtin_rule",
    "changed_decisions",
    "compile_condition",
    "compile_expression",
    "compile_message",
    "evaluate",
    "explain",
    "format_value",
    "is_po_box",
    "load_rules",
    "order_context",
    "parse_duration",
]
