"""The in-memory store against the shipped store contract."""

from collections.abc import Iterator

import pytest

from ordercore.ports import Store
from ordercore.testing.contracts import StoreContract
from ordercore_adapters.memory import MemoryStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = MemoryStore()
        yield s
        s.close()
