"""pytest plugin (registered through the ``pytest11`` entry point): fixtures for an in-memory ordercore.

* ``ordercore_clock``: a :class:`~ordercore.ManualClock` at 2026-01-05 09:00 UTC.
* ``ordercore_app``: an application on a fresh ``memory://`` store, with that clock, sequential ids and a
  strict message bus (a failing event handler fails the test). Closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ordercore.clock import ManualClock
from ordercore.ids import SequentialIds
from ordercore.service.application import OrderCore
from ordercore.service.bootstrap import bootstrap

FIXED_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def ordercore_clock() -> ManualClock:
    return ManualClock(FIXED_START)


@pytest.fixture
def ordercore_app(ordercore_clock: ManualClock) -> Iterator[OrderCore]:
    app = bootstrap("memory://", clock=ordercore_clock, ids=SequentialIds(), strict=True)
    try:
        yield app
    finally:
        app.close()
