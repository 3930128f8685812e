"""Size limits that keep a condition cheap to check, compile and run, whatever text it comes from."""

from __future__ import annotations

import attrs

__all__ = ["Limits"]


@attrs.frozen
class Limits:
    """Upper bounds enforced while parsing; breaking one is a load-time ``InvalidExpression``."""

    max_length: int = 10_000  # characters of source (too_long)
    max_depth: int = 40  # nesting of the syntax tree and of parentheses (too_deep)
    max_nodes: int = 1_000  # syntax nodes (too_many_nodes)
    max_string: int = 1_000  # characters of one string literal (too_long)
    max_list: int = 1_000  # items of one list literal (too_many_items)
    max_regex: int = 200  # characters of a matches() pattern (bad_regex)
