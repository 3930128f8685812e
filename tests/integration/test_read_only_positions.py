"""Positions read only: ``StagedStock.read_for_skus`` may hand out the very copies a store keeps (sourcing
reads every position of an order's SKUs and changes the few it reserves from). On every store, what is
handed out this way is never changed by the unit, the unit's own copy to change comes from ``get``, and
what the store keeps stays as committed whatever the unit does with it until it commits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ordercore import (
    ConcurrencyConflict,
    InvalidValue,
    ManualClock,
    OrderCore,
    ReceiveStock,
    SequentialIds,
    Sku,
    bootstrap,
)
from ordercore.ports import Store
from ordercore.storage import StagedStock
from tests.integration._every_store import store_url
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import AT

__all__ = ["admin", "store_url", "url"]  # fixtures: every store, and the PostgreSQL tests' schema

MUG, CUP = Sku("MUG"), Sku("CUP")


@pytest.fixture
def app(store_url: str) -> Iterator[OrderCore]:
    application = bootstrap(store_url, clock=ManualClock(AT), ids=SequentialIds())
    for node, sku in (("WH-1", "MUG"), ("WH-2", "MUG"), ("WH-1", "CUP")):
        application.handle(ReceiveStock(node_id=node, sku=sku, quantity=10, reason="opening stock"))
    yield application
    application.close()


def store_of(app: OrderCore) -> Store:
    return app.store


def inventory(uow: object) -> StagedStock:
    repo = uow.inventory  # type: ignore[attr-defined]
    assert isinstance(repo, StagedStock)
    return repo


def test_read_for_skus_gives_every_position_of_the_skus_by_node_and_sku(app: OrderCore) -> None:
    with store_of(app).unit_of_work() as uow:
        found = inventory(uow).read_for_skus([MUG])
        assert set(found) == {("WH-1", MUG), ("WH-2", MUG)}
        assert all(p.on_hand == 10 and p.available(AT) == 10 for p in found.values())
        assert inventory(uow).read_for_skus([]) == {}
        assert set(inventory(uow).read_for_skus([MUG, CUP, MUG])) == {
            ("WH-1", CUP),
            ("WH-1", MUG),
            ("WH-2", MUG),
        }


def test_a_position_changed_through_get_leaves_the_read_only_one_and_the_store_as_they_were(
    app: OrderCore,
) -> None:
    store = store_of(app)
    with store.unit_of_work() as uow:
        read = inventory(uow).read_for_skus([MUG])[("WH-1", MUG)]
        own = inventory(uow).get("WH-1", MUG)
        assert own is not None and own is not read
        assert own.version == read.version and own.persisted_version == read.persisted_version
        own.reserve("R-1", 3, reference="O-1", at=AT, hard=True)
        assert read.available(AT) == 10  # the read-only copy did not move
        # the unit now sees its own copy, in every read
        assert inventory(uow).get("WH-1", MUG) is own
        assert inventory(uow).read_for_skus([MUG])[("WH-1", MUG)] is own
        assert {p.node_id: p for p in uow.inventory.for_sku(MUG)}["WH-1"] is own
        # another unit, meanwhile, reads what is stored
        with store.unit_of_work() as other:
            assert inventory(other).read_for_skus([MUG])[("WH-1", MUG)].available(AT) == 10
        uow.inventory.save(own)
        uow.commit()
    with store.unit_of_work() as uow:
        assert inventory(uow).read_for_skus([MUG])[("WH-1", MUG)].available(AT) == 7
        assert [e.kind.value for e in uow.inventory.ledger("WH-1", MUG)][-1] == "reserved"


def test_a_unit_that_changes_nothing_keeps_what_the_store_holds(app: OrderCore) -> None:
    store = store_of(app)
    with store.unit_of_work() as uow:
        before = {k: (p.version, p.available(AT)) for k, p in inventory(uow).read_for_skus([MUG]).items()}
        inventory(uow).get("WH-2", MUG).reserve(  # type: ignore[union-attr]
            "R-2", 4, reference="O-2", at=AT, hard=True
        )
        # rolled back: nothing saved nor committed
    with store.unit_of_work() as uow:
        after = {k: (p.version, p.available(AT)) for k, p in inventory(uow).read_for_skus([MUG]).items()}
    assert after == before


def test_the_read_only_copy_itself_cannot_be_saved(app: OrderCore) -> None:
    with store_of(app).unit_of_work() as uow:
        read = inventory(uow).read_for_skus([CUP])[("WH-1", CUP)]
        with pytest.raises(InvalidValue) as refused:
            uow.inventory.save(read)
        assert refused.value.field == "position" and refused.value.code == "invalid_value"
        # nothing was staged: the unit has nothing to write
        assert inventory(uow).staged == {}


def test_read_for_skus_refuses_what_is_not_an_iterable_of_skus(app: OrderCore) -> None:
    with store_of(app).unit_of_work() as uow:
        for bad in (MUG, "MUG", 3, ["MUG"]):
            with pytest.raises(InvalidValue) as refused:
                inventory(uow).read_for_skus(bad)  # type: ignore[arg-type]
            assert refused.value.field == "skus"


def test_a_unit_sees_what_it_read_first_even_after_another_unit_commits(app: OrderCore) -> None:
    store = store_of(app)
    with store.unit_of_work() as uow:
        first = inventory(uow).read_for_skus([MUG])[("WH-1", MUG)]
        with store.unit_of_work() as other:
            pos = other.inventory.get("WH-1", MUG)
            assert pos is not None
            pos.reserve("R-3", 2, reference="O-3", at=AT, hard=True)
            other.inventory.save(pos)
            other.commit()
        # within the unit, repeated reads return what it saw first; its own copy starts from there
        assert inventory(uow).read_for_skus([MUG])[("WH-1", MUG)] is first
        own = inventory(uow).get("WH-1", MUG)
        assert own is not None and own.version == first.version
        own.reserve("R-4", 1, reference="O-4", at=AT, hard=True)
        uow.inventory.save(own)
        with pytest.raises(ConcurrencyConflict):  # the stored position moved on: the commit refuses
            uow.commit()
