"""Self-contained TUI widgets: each owns its state and posts messages upward."""
