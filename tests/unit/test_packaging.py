"""What a wheel of ordercore holds: every package of the source tree, and the typing marker of both.

The tests and the README install ordercore editable, which maps the source folders whole; a wheel (from an
index, or ``pip install .``) holds only what ``pyproject.toml`` lists. A package left out of the list
works in every editable install and is missing from every real one.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setuptools_table() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, object] = tomllib.load(f)["tool"]["setuptools"]
    return table


def packages_in(folder: Path, name: str) -> set[str]:
    """The dotted names of ``folder`` and of every folder under it holding an ``__init__.py``."""
    return {
        ".".join([name, *init.parent.relative_to(folder).parts])
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_the_wheel_lists_every_package_of_the_source_tree_and_nothing_else() -> None:
    table = setuptools_table()
    folders = table["package-dir"]
    assert isinstance(folders, dict)
    in_tree = set().union(*(packages_in(ROOT / folder, name) for name, folder in folders.items()))
    listed = table["packages"]
    assert isinstance(listed, list)
    assert "ordercore.storage" in in_tree and "ordercore.testing.contracts" in in_tree
    assert sorted(in_tree - set(listed)) == []  # in the tree, missing from an installed wheel
    assert sorted(set(listed) - in_tree) == []  # listed, but no such package
    assert len(listed) == len(set(listed))


def test_the_wheel_carries_the_typing_marker_of_both_top_level_packages() -> None:
    table = setuptools_table()
    folders, data = table["package-dir"], table["package-data"]
    assert isinstance(folders, dict) and isinstance(data, dict)
    for name, folder in folders.items():
        assert (ROOT / folder / "py.typed").is_file()
        assert "py.typed" in data[name]


def test_every_file_a_package_needs_besides_its_modules_is_declared() -> None:
    table = setuptools_table()
    folders, data = table["package-dir"], table["package-data"]
    assert isinstance(folders, dict) and isinstance(data, dict)
    for name, folder in folders.items():
        others = sorted(
            str(path.relative_to(ROOT / folder))
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
        )
        assert others == sorted(data[name]), f"{name}: files a wheel would leave out"
