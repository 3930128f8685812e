"""The guides in docs/ (and the README) are executed: every fenced ```python block of a guide runs, in order, in one fresh
namespace per guide, so a guide fails here as soon as an example no longer matches the library.

A block fenced as ```python no-run is shown but not executed (for fragments that cannot run on their own,
such as configuration of a third-party package). Tracebacks name the guide and its line numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from ordercore import DEFAULT_LIFECYCLE

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOC_FILES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
NO_RUN = "no-run"

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")


@attrs.frozen
class Block:
    """A fenced code block: its info string (``python``, ``python no-run``...), first code line and code."""

    language: str
    options: tuple[str, ...]
    line: int
    code: str


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the 1-based line number of its first line of code."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].split()
        body: list[str] = []
        j = i + 1
        closing = re.compile(rf"{re.escape(fence[0])}{{{len(fence)},}}\s*")
        while j < len(lines) and not closing.fullmatch(lines[j]):
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"line {i + 1}: the code block opened here is never closed")
        language = info[0].lower() if info else ""
        blocks.append(Block(language, tuple(info[1:]), i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [b for b in fenced_blocks(path.read_text(encoding="utf-8")) if b.language == "python"]


def test_there_are_guides() -> None:
    assert sorted(DOCS.glob("*.md")), f"no guide found in {DOCS}"


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_guide_examples_run(path: Path) -> None:
    blocks = python_blocks(path)
    assert blocks, f"{path.name} has no ```python example"
    namespace: dict[str, object] = {"__name__": f"docs.{path.stem.replace('-', '_')}"}
    for block in blocks:
        if NO_RUN in block.options:
            continue
        # pad with blank lines so that line numbers in tracebacks are those of the guide
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(path), "exec"), namespace)


def test_lifecycle_diagram_is_up_to_date() -> None:
    path = DOCS / "concepts.md"
    diagrams = [
        b.code.strip()
        for b in fenced_blocks(path.read_text(encoding="utf-8"))
        if b.language == "mermaid" and b.code.lstrip().startswith("stateDiagram")
    ]
    assert len(diagrams) == 1, f"{path.name} should hold exactly one lifecycle diagram, found {len(diagrams)}"
    assert diagrams[0] == DEFAULT_LIFECYCLE.to_mermaid(), (
        f"the diagram in {path.name} is out of date; regenerate it with "
        "python -c 'import ordercore; print(ordercore.DEFAULT_LIFECYCLE.to_mermaid())'"
    )
