"""What the adapters that connect to servers share: URLs shown without their passwords."""

from __future__ import annotations

import re

__all__ = ["masked"]

_PASSWORD_IN_USERINFO = re.compile(r"(://[^/?#@]*?:)[^/?#@]*@")
_PASSWORD_IN_QUERY = re.compile(r"(?i)([?&]password=)[^&#]*")


def masked(text: str) -> str:
    """``text`` with the password of any URL in it (``user:password@``, ``?password=``) shown as ``***``:
    for error messages and logs, which must never carry one."""
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_USERINFO.sub(r"\1***@", text))
