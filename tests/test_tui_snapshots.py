"""Snapshot tests of the TUI's screens (pytest-textual-snapshot).

The app is built with the same factory the CLI uses, over a store seeded with a fixed
conversation, at a fixed 100x30 terminal. Nothing time- or id-dependent is rendered.
Regenerate after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs in tests/__snapshots__ before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatterm.backend import BackendConfig
from chatterm.config import Choice, Config
from chatterm.store import INTERRUPTED, HistoryStore
from chatterm.tui.app import ChattermApp, build_app

SIZE = (100, 30)

ANSWER = """\
Use `sorted` with a **key** function:

```python
people = [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]
by_age = sorted(people, key=lambda p: p["age"])
```

| call | order |
|------|-------|
| `sorted(xs, key=f)` | ascending |
| `sorted(xs, key=f, reverse=True)` | descending |

- `list.sort()` sorts in place
- both are *stable*
"""


def seeded_app(tmp_path: Path, theme: str) -> ChattermApp:
    store = HistoryStore(tmp_path / "history.db")
    for title in ("Plan a trip to Lisbon", "Why is the sky blue?"):
        conv = store.create_conversation(title)
        user = store.add_message(conv.id, "user", title)
        store.add_message(conv.id, "assistant", "An answer.", parent_id=user.id,
                          backend="openai", model="gpt-4o-mini")
    conv = store.create_conversation("Sort a list of dicts [by key]")
    user = store.add_message(conv.id, "user", "How do I sort a list of dicts [by key] in Python?")
    store.add_message(conv.id, "assistant", "An older answer.", parent_id=user.id,
                      backend="local", model="Qwen/Qwen2.5-0.5B-Instruct")
    reply = store.add_message(conv.id, "assistant", ANSWER, parent_id=user.id,
                              backend="openai", model="gpt-4o-mini")
    follow = store.add_message(conv.id, "user", "And newest first?", parent_id=reply.id)
    cut = store.add_message(conv.id, "assistant", "Pass `reverse=True` to", parent_id=follow.id,
                            backend="openai", model="gpt-4o-mini")
    store.update_message(cut.id, status=INTERRUPTED, error="interrupted")
    # Fixed dates (noon UTC, mid-June 2024: the same day in every time zone), so the sidebar's
    # "when" column is the same on every run.
    for offset, conv_id in enumerate(c.id for c in reversed(store.list_conversations())):
        store._db.execute("UPDATE conversations SET updated_at = ?, created_at = ? WHERE id = ?",
                          (1718452800 + offset * 86400, 1718452800, conv_id))
    config = Config(path=tmp_path / "config.toml", tui={"theme": theme})
    choice = Choice("openai", BackendConfig(model="gpt-4o-mini"), {}, None, None)
    return build_app(
        choice, config, store, continue_last=True,
        state_file=tmp_path / "state.json", user_themes_dir=tmp_path / "themes",
    )


async def _steady(pilot: Any) -> None:
    app = pilot.app
    app.prompt_input.cursor_blink = False
    await pilot.pause()


def test_main_screen_dark(snap_compare: Any, tmp_path: Path) -> None:
    """You should see the sidebar (three conversations, the open one highlighted), the open
    conversation with a rendered table and highlighted code, the 2/2 branch marker on the reply
    that has a sibling, an interrupted last reply, the prompt, and the status line, in chatterm-dusk."""
    assert snap_compare(seeded_app(tmp_path, "chatterm-dusk"), terminal_size=SIZE,
                        run_before=_steady)


def test_main_screen_light(snap_compare: Any, tmp_path: Path) -> None:
    """The same screen in the light chatterm-paper theme."""
    assert snap_compare(seeded_app(tmp_path, "chatterm-paper"), terminal_size=SIZE,
                        run_before=_steady)


def test_search_screen(snap_compare: Any, tmp_path: Path) -> None:
    """You should see the search dialog over the app, the query "sort", and the hits (title,
    role, snippet)."""

    async def search(pilot: Any) -> None:
        await _steady(pilot)
        await pilot.press("ctrl+f")
        await pilot.pause()
        await pilot.press(*"sort")
        screen = pilot.app.screen
        for _ in range(100):  # the query runs after a short debounce, in a worker
            if screen.hits:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(seeded_app(tmp_path, "chatterm-dusk"), terminal_size=SIZE,
                        run_before=search)


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    """You should see every key with its action and the id to remap it."""

    async def open_help(pilot: Any) -> None:
        await _steady(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(seeded_app(tmp_path, "chatterm-dusk"), terminal_size=SIZE,
                        run_before=open_help)
