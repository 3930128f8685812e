"""A fixture for tests that hold on every shipped store: the URL of a fresh memory, SQLite and PostgreSQL
store in turn. A test module using it imports ``admin`` and ``url`` from the PostgreSQL tests too (the
PostgreSQL store's fresh schema), which skip where no server answers and fail when CI is set."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stock.db'}"
    return str(request.getfixturevalue("url"))
