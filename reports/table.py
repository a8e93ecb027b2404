"""What a report table is before it is HTML: columns, rows and cells of display text.

Sections fill these with text already formatted (profiler/format.py) and the templates render
them (templates/macros.html.j2), so no section writes markup and every table looks the same
(torch.utils.benchmark's Table / _Row / _Column: bookkeeping apart from rendering).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from profiler.format import DASH


@dataclass
class Cell:
    """One cell: its text, an optional muted second line and a tooltip (the title attribute)."""

    text: str = DASH
    sub: str | None = None
    title: str | None = None
    cls: str = ""
    """CSS classes: `l` left-aligned, `na` unavailable, `v-…` a verdict's colour, `tag` a small label."""
    colspan: int = 1
    href: str | None = None
    """An anchor inside the page ('#w-0-llm'); never a URL from the run."""
    lines: tuple[str, ...] = ()
    """Further lines of the same weight as `text` (a lever, a source)."""


@dataclass
class Column:
    label: str
    align: str = "r"
    """r: numbers, l: text."""
    title: str | None = None


@dataclass
class Row:
    cells: list[Cell] = field(default_factory=list)
    group: str | None = None
    """A row that heads a group of rows (a workload): spans the table, `cells` unused."""
    group_sub: str | None = None
    group_href: str | None = None
    cls: str = ""


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    cls: str = ""
    id: str | None = None

    @property
    def empty(self) -> bool:
        return not self.rows


def unavailable(why: str | None, text: str = "unavailable", colspan: int = 1, show_why: bool = False) -> Cell:
    """A value this run could not measure: muted, with its reason (never a zero)."""
    return Cell(text, sub=why if show_why else None, title=why, cls="na l" if colspan > 1 else "na", colspan=colspan)


@dataclass
class Fact:
    """One line of a key-value list; `items` (nested pairs) or `lines` (a list of texts) when the value is a collection."""

    key: str
    text: str = ""
    items: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
