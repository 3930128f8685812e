"""The stores' decoded-copy cache: a row's body travels only when no copy of its version is kept."""

from __future__ import annotations

from ordercore.storage import VersionedCopies


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
