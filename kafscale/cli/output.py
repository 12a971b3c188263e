"""Printing results: aligned tables for people, JSON for programs, one-line errors."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    title: str = ""


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def format_table(table: Table) -> str:
    cells = [table.headers] + [[_cell(v) for v in row] for row in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]
    lines = [table.title] if table.title else []
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if not table.rows:
        lines.append("(none)")
    return "\n".join(lines)


def emit(args: Any, data: Any, *tables: Table | str) -> None:
    """``data`` as JSON with ``--output json``; otherwise the tables (and text lines),
    separated by blank lines."""
    if getattr(args, "output", "table") == "json":
        print(json.dumps(data, indent=2))
        return
    print("\n\n".join(t if isinstance(t, str) else format_table(t) for t in tables))


def note(message: str) -> None:
    """A remark for people, on stderr so stdout stays parseable."""
    print(f"kafscale: {message}", file=sys.stderr)


def fail(message: str) -> None:
    print(f"kafscale: {message}", file=sys.stderr)
