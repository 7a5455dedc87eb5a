"""Widgets grouped by screen region; each owns its state and posts messages upward."""
