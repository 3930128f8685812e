"""Contract suite for store adapters (requires pytest).

Subclass :class:`StoreContract` in your test module and provide a ``store`` fixture that yields a fresh,
empty store; pytest then runs every contract test against your adapter::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            s = MyStore(...)
            yield s
            s.close()
"""

from __future__ import annotations

from ordercore.testing.contracts._orders import OrderContract
from ordercore.testing.contracts._read_models import ReadModelContract
from ordercore.testing.contracts._stock import StockContract

__all__ = ["StoreContract"]


class StoreContract(OrderContract, StockContract, ReadModelContract):
    """Behaviour every :class:`~ordercore.ports.Store` must have: orders, the outbox and idempotency keys
    (:class:`OrderContract`), stock, capacity, node states and housekeeping (:class:`StockContract`), and
    the read models (:class:`ReadModelContract`)."""
