"""The stores' decoded-copy cache: a row's body travels only when no copy of its version is kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ordercore.inventory import LedgerEntry, StockPosition
from ordercore.storage import CATCH_UP_ENTRIES, Behind, Bounded, VersionedCopies, positions_at
from ordercore.values import Sku
from tests.unit.factories import AT


class Rows:
    """A table of (version, body) rows that records which versions each read asked to skip."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str]] = {}
        self.asked: list[int] = []

    def fetch(self, key: str):  # type: ignore[no-untyped-def]
        def run(skip: int) -> tuple[int, str | None] | None:
            self.asked.append(skip)
            row = self.rows.get(key)
            if row is None:
                return None
            version, body = row
            return version, (None if version == skip else body)

        return run


def test_the_body_travels_only_when_the_kept_copy_is_stale() -> None:
    cache: VersionedCopies[str, list[str]] = VersionedCopies(list, limit=10)
    table = Rows()
    assert cache.read_through("A", table.fetch("A")) == (None, None)  # no row
    table.rows["A"] = (1, "body-1")
    assert cache.read_through("A", table.fetch("A")) == (None, "body-1")  # nothing kept: the body
    cache.put("A", 1, ["decoded-1"])
    kept, body = cache.read_through("A", table.fetch("A"))
    assert kept == ["decoded-1"] and body is None  # current: no body
    table.rows["A"] = (2, "body-2")
    assert cache.read_through("A", table.fetch("A")) == (None, "body-2")  # stale: the new body
    assert table.asked == [-1, -1, 1, 1]


def test_a_copy_evicted_between_the_two_reads_falls_back_to_the_body() -> None:
    cache: VersionedCopies[str, list[str]] = VersionedCopies(list, limit=10)
    table = Rows()
    table.rows["A"] = (1, "body-1")
    cache.put("A", 1, ["decoded-1"])

    def evicting(skip: int) -> tuple[int, str | None] | None:
        row = table.fetch("A")(skip)
        cache.put("A", 0, ["older"])  # the kept copy changes after the version was asked for
        return row

    assert cache.read_through("A", evicting) == (None, "body-1")
    assert table.asked == [1, -1]


# -- the bound: the oldest (by when each was last put) goes first -------------------------------------------
def test_a_full_cache_drops_the_entry_put_longest_ago() -> None:
    cache: VersionedCopies[str, list[str]] = VersionedCopies(list, limit=2)
    cache.put("A", 1, ["a"])
    cache.put("B", 1, ["b"])
    cache.put("A", 2, ["a2"])  # A is now the newest
    cache.put("C", 1, ["c"])  # so B goes
    assert cache.version("B") is None
    assert (cache.version("A"), cache.version("C")) == (2, 1)
    assert cache.get("A", 2) == ["a2"]


def test_a_cache_of_no_entries_keeps_nothing() -> None:
    cache: VersionedCopies[str, list[str]] = VersionedCopies(list, limit=0)
    cache.put("A", 1, ["a"])
    assert cache.version("A") is None


@given(
    limit=st.integers(min_value=0, max_value=5),
    puts=st.lists(st.tuples(st.integers(min_value=0, max_value=8), st.integers()), max_size=60),
)
def test_bounded_keeps_the_newest_puts_of_distinct_keys(limit: int, puts: list[tuple[int, int]]) -> None:
    kept: Bounded[int, int] = Bounded(limit)
    model: list[tuple[int, int]] = []  # (key, value), oldest first
    for key, value in puts:
        kept.put(key, value)
        if limit:
            model = [(k, v) for k, v in model if k != key] + [(key, value)]
            model = model[-limit:]
        assert len(kept) == len(model) <= limit
    for key in range(9):
        assert kept.get(key) == dict(model).get(key)


# -- positions other writers moved on: caught up from the ledger, or read whole ---------------------------
def _ledger() -> list[LedgerEntry]:
    p = StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=1_000)
    for i in range(CATCH_UP_ENTRIES + 10):
        p.reserve(f"K-{i}", 1, reference=f"O-{i}", at=AT)
    return p.new_entries()


class Ledger:
    """One position's ledger, as the store's statements read it; records what each was asked."""

    def __init__(self, entries: list[LedgerEntry]) -> None:
        self.entries = entries
        self.asked_entries: list[list[Behind]] = []
        self.asked_whole: list[list[tuple[str, str]]] = []

    def read_entries(self, behind: list[Behind]) -> list[LedgerEntry]:
        self.asked_entries.append(behind)
        return [e for _, _, kept, stored in behind for e in self.entries if kept < e.sequence <= stored]

    def read_whole(self, keys: list[tuple[str, str]]) -> list[StockPosition]:
        self.asked_whole.append(keys)
        return [StockPosition.replay(self.entries)]


def _cache_at(entries: list[LedgerEntry], version: int) -> VersionedCopies[tuple[str, str], StockPosition]:
    cache: VersionedCopies[tuple[str, str], StockPosition] = VersionedCopies(StockPosition.clone, limit=10)
    kept = StockPosition.replay(entries[:version])
    kept.mark_persisted()
    cache.put(("WH-1", "SKU-1"), version, kept)
    return cache


def test_a_copy_a_few_entries_behind_is_advanced_by_them_and_kept_at_the_new_version() -> None:
    entries = _ledger()
    ledger = Ledger(entries[:40])
    cache = _cache_at(entries, 37)
    (found,) = positions_at(cache, [("WH-1", "SKU-1", 40)], ledger.read_entries, ledger.read_whole)
    assert found == StockPosition.replay(entries[:40]) and found.new_entries() == []
    assert ledger.asked_entries == [[("WH-1", "SKU-1", 37, 40)]] and ledger.asked_whole == []
    assert cache.get(("WH-1", "SKU-1"), 40) == found


def test_a_copy_too_far_behind_none_kept_or_entries_that_do_not_add_up_are_read_whole() -> None:
    entries = _ledger()
    whole = StockPosition.replay(entries)
    far = Ledger(entries)
    cache = _cache_at(entries, 1)  # more than CATCH_UP_ENTRIES behind
    assert positions_at(cache, [("WH-1", "SKU-1", len(entries))], far.read_entries, far.read_whole) == [whole]
    assert far.asked_entries == [] and far.asked_whole == [[("WH-1", "SKU-1")]]
    none_kept = Ledger(entries)
    empty: VersionedCopies[tuple[str, str], StockPosition] = VersionedCopies(StockPosition.clone, limit=10)
    positions_at(empty, [("WH-1", "SKU-1", len(entries))], none_kept.read_entries, none_kept.read_whole)
    assert none_kept.asked_entries == [] and none_kept.asked_whole == [[("WH-1", "SKU-1")]]
    short = Ledger(entries[:39])  # one entry of the three missing (a row ahead of what was read)
    cache = _cache_at(entries, 37)
    found = positions_at(cache, [("WH-1", "SKU-1", 40)], short.read_entries, short.read_whole)
    assert found == [StockPosition.replay(entries[:39])]  # what read_whole gave, not an advanced copy
    assert short.asked_whole == [[("WH-1", "SKU-1")]]
