"""A reply's rows as strips (chatterm.tui.widgets.part_rows): a drawn row is made once and
drawn again as long as its rendering, width and style stay; anything else makes it anew. And
a plain row (a part still rendering, a line too long for Markdown) is the same strip as the
straightforward construction, for text narrower, as wide as and wider than the row."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.segment import Segment
from rich.style import Style
from test_tui import run
from test_tui_long import opened, reply_body
from textual.strip import Strip

from chatterm.tui.widgets import part_rows


def runs(strip: Strip) -> list[tuple[str, Style | None]]:
    return [(segment.text, segment.style) for segment in strip.simplify()]


def test_a_drawn_row_is_made_once_and_anew_when_its_rendering_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path, "T", [("q", "first *answer* row")]) as (app, _pilot):
            rows = reply_body(app).rows
            assert rows.key is not None
            width = rows.key[0]
            base = Style(color="white", bgcolor="black")
            first = rows.strip(0, width, base)
            assert "first answer row" in first.text
            assert rows.strip(0, width, base) is first  # drawn again: not made again
            # Another style (focus, theme): made anew in it.
            bold = rows.strip(0, width, base + Style(bold=True))
            assert bold is not first and all(s.style and s.style.bold for s in bold)
            # The part rendered again at the same width and theme: its new rows are drawn.
            part = rows.parts[0]
            rows._store(part, rows.key, rows._render("second text", width))
            assert "second text" in rows.strip(0, width, base).text

    run(scenario)


def test_the_strip_cache_is_bounded() -> None:
    rows = part_rows.PartRows("x", lambda start, change: None)
    part = rows.parts[0]
    lines: list[part_rows.Line] = [[("row", 0)] for _ in range(part_rows.STRIP_CACHE_ROWS + 50)]
    for row in range(len(lines)):
        rows._rendered_strip(part, row, lines, [None], 10, Style())
    assert len(rows._strips) == part_rows.STRIP_CACHE_ROWS


@given(st.text(alphabet=st.sampled_from("ab 界\u0301"), max_size=30), st.integers(1, 20))
def test_a_plain_row_is_the_straightforward_strip(text: str, width: int) -> None:
    base = Style(color="red", bgcolor="blue")
    expected = Strip([Segment(text)]).adjust_cell_length(width, base).apply_style(base)
    strip = part_rows._plain_strip(text, width, base)
    assert strip.cell_length == expected.cell_length == width
    assert runs(strip) == runs(expected)
