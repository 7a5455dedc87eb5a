"""Containers that draw one of their own rows and repeat it (their ``render_lines``).

Why: a container's own rows (its background, its padding, a left or right border) are alike
from top to bottom when it has no top or bottom edge and no title, yet Textual renders each
of them again whenever the container is repainted. While a reply streams, the conversation
view scrolls and the reply's message view grows on every batch, so both are repainted whole
at every frame: a screenful of identical rows, each through Textual's style pipeline (about
a fifth of each such frame, bench/bench_tui.py). Repeating one row also hands the compositor
the same strip for every row, and Textual remembers how it cut a strip, so cutting the rows
into the screen's columns is done once rather than once per row.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

# Edge types that draw nothing (Textual's defaults: "" for borders and outlines, "none" for
# keylines).
_NO_EDGE = ("",)
_NO_KEYLINE = ("", "none")


def rows_alike(widget: Widget) -> bool:
    """Whether every row ``widget`` draws itself (behind its children) is the same row: no
    top or bottom border or outline, no border title or subtitle, no keylines."""
    styles = widget.styles
    return (
        styles.border_top[0] in _NO_EDGE
        and styles.border_bottom[0] in _NO_EDGE
        and styles.outline_top[0] in _NO_EDGE
        and styles.outline_bottom[0] in _NO_EDGE
        and styles.keyline[0] in _NO_KEYLINE
        and widget.border_title is None
        and widget.border_subtitle is None
    )


def render_lines(
    widget: Widget, crop: Region, draw: Callable[[Region], list[Strip]]
) -> list[Strip]:
    """A container's ``render_lines``: ``draw`` (Textual's) for one row of ``crop``, repeated,
    when :func:`rows_alike` holds; else ``draw`` for all of it. (A function the container's
    own ``render_lines`` calls, not a mixin class: Textual takes a widget's CSS from its
    first base class only, so a mixin before the container class would drop its styles.)"""
    if crop.height > 1 and rows_alike(widget):
        row = draw(Region(crop.x, crop.y, crop.width, 1))
        if len(row) == 1:
            return row * crop.height
    return draw(crop)
