"""The condition language of the rule engine: parse, type-check and compile order conditions.

``compile_expression("order.total > 5000 EUR and customer.is_new", schema)`` returns a
:class:`CompiledExpression` whose ``evaluate(ctx)`` is close to the speed of a hand-written lambda.
See docs/rules-language.md for the language reference.
"""

from __future__ import annotations

from .checker import Checked, check_tree
from .compiler import CompiledExpression, compile_expression
from .functions import FUNCTIONS
from .limits import Limits
from .nodes import Attribute, Binary, Call, ListLiteral, Literal, Name, Node, Quantifier, Unary, unparse
from .parser import QUANTIFIERS, parse
from .types import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    INT,
    MONEY,
    STRING,
    ListOf,
    Nullable,
    Record,
    Scalar,
    Schema,
    Type,
)

__all__ = [
    "BOOL",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "DURATION",
    "ERROR_CODES",
    "FUNCTIONS",
    "INT",
    "MONEY",
    "QUANTIFIERS",
    "STRING",
    "Attribute",
    "Binary",
    "Call",
    "Checked",
    "CompiledExpression",
    "Limits",
    "ListLiteral",
    "ListOf",
    "Literal",
    "Name",
    "Node",
    "Nullable",
    "Quantifier",
    "Record",
    "Scalar",
    "Schema",
    "Type",
    "Unary",
    "check",
    "compile_expression",
    "parse",
    "unparse",
]

#: Every ``RuleProblem.code`` the language reports (stable).
ERROR_CODES = (
    "syntax_error",
    "unexpected_token",
    "unterminated_string",
    "bad_literal",
    "unknown_currency",
    "forbidden_name",
    "method_call",
    "chained_comparison",
    "too_long",
    "too_deep",
    "too_many_nodes",
    "too_many_items",
    "unknown_field",
    "unknown_function",
    "wrong_arity",
    "type_mismatch",
    "bad_regex",
    "shadowed_name",
    "not_boolean",
)


def check(tree: Node, schema: Schema, *, expect: Type | None = BOOL, limits: Limits | None = None) -> Type:
    """The type of ``tree`` under ``schema``; raises ``InvalidExpression`` with every type problem."""
    return check_tree(tree, schema, expect=expect, limits=limits).type
