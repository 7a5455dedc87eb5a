"""Moved to :mod:`chatterm.markdown_blocks` (one splitter for ``ask`` and the TUI); kept so
existing imports keep working."""

from chatterm.markdown_blocks import *  # noqa: F403
from chatterm.markdown_blocks import (
    BREAK,
    FROZEN_CHARS,
    SEGMENT_CHARS,
    SegmentSplitter,
    split_blocks,
    split_segments,
)

__all__ = [
    "BREAK",
    "FROZEN_CHARS",
    "SEGMENT_CHARS",
    "SegmentSplitter",
    "split_blocks",
    "split_segments",
]
