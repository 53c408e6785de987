"""A plain-text table whose cells wrap to fixed column widths."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence


def cell_lines(value: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in value.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width, break_long_words=True) or [""])
    return lines


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]
) -> str:
    """Render rows under headers; a row's cells may span several lines."""
    rule = "+".join("-" * (w + 2) for w in widths)
    out = [_line(headers, widths), rule]
    for row in rows:
        cells = [cell_lines(str(value), width) for value, width in zip(row, widths, strict=True)]
        height = max(len(c) for c in cells)
        for i in range(height):
            out.append(_line([c[i] if i < len(c) else "" for c in cells], widths))
        out.append(rule)
    return "\n".join(out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    line = "|".join(f" {cell:<{width}} " for cell, width in zip(cells, widths, strict=True))
    return line.rstrip()
