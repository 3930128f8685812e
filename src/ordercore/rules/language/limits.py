"""Size limits that keep a condition cheap to check, compile and run, whatever text it comes from."""

from __future__ import annotations

from typing import Any

import attrs

from ordercore.errors import InvalidValue

__all__ = ["MAX_DEPTH", "Limits"]

#: The deepest nesting a :class:`Limits` may allow: deeper, the generated Python code would reach the
#: limits of Python's own parser and interpreter.
MAX_DEPTH = 100


def _check_depth(_: Any, __: Any, value: object) -> None:
    if type(value) is not int or not 1 <= value <= MAX_DEPTH:
        raise InvalidValue(f"must be a whole number from 1 to {MAX_DEPTH}", field="max_depth", value=value)


@attrs.frozen
class Limits:
    """Upper bounds enforced while parsing; breaking one is a load-time ``InvalidExpression``."""

    max_length: int = 10_000  # characters of source (too_long)
    #: nesting of the syntax tree and of parentheses (too_deep); InvalidValue above MAX_DEPTH
    max_depth: int = attrs.field(default=40, validator=_check_depth)
    max_nodes: int = 1_000  # syntax nodes (too_many_nodes)
    max_string: int = 1_000  # characters of one string literal (too_long)
    max_list: int = 1_000  # items of one list literal (too_many_items)
    max_regex: int = 200  # characters of a matches() pattern (bad_regex)
