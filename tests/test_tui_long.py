"""Long content in the TUI (issue 9): drawn where it is on screen, never all at once.

The real app, driven by the pilot, over real SQLite histories: a long stored reply renders
only the parts on screen (the rest stays estimated), long parts render on the render thread,
a reply taller than the inline cap shows its end under a notice and opens whole in the reader,
a line too long for Markdown is folded as plain (sanitised) text, and the rows folding rules
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tui import make_app, run, screen_text, seed, server_choice, settle, type_now, wait_for

from chatterm.backend import BackendConfig
from chatterm.config import Choice
from chatterm.tui.screens.reader import ReaderScreen, ReplyReader
from chatterm.tui.widgets import frozen_markdown, markdown_render, part_rows
from chatterm.tui.widgets.frozen_markdown import FrozenMarkdown
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.plain_rows import PlainRows
from chatterm.tui.widgets.render_queue import QUEUE

SIZE = (100, 30)
CHOICE = Choice("openai", BackendConfig(), {}, None, None)


def long_markdown(sections: int) -> str:
    return "".join(
        f"## Section {i}\n\nSome *prose* for section {i} with `code` in it.\n\n"
        f"- point {i}a\n- point {i}b\n\n"
        for i in range(sections)
    )


async def drawn(app: Any, pilot: Any) -> None:
    """Workers done, the render thread idle, a frame drawn."""
    await settle(app, pilot)
    await QUEUE.idle()
    await pilot.pause()


@contextlib.asynccontextmanager
async def opened(
    tmp_path: Path, title: str, pairs: list[tuple[str, str]]
) -> AsyncIterator[tuple[Any, Any]]:
    """The real app with one seeded conversation open and drawn: (app, pilot)."""
    app, store = make_app(tmp_path, CHOICE)
    conv = seed(store, title, pairs)
    async with app.run_test(size=SIZE) as pilot:
        await app.open_conversation(conv)
        await drawn(app, pilot)
        yield app, pilot


def reply_body(app: Any) -> FrozenMarkdown:
    view = app.view.message_views()[-1]
    assert isinstance(view, MessageView) and view.role == "assistant"
    return view.segments[0]


def render_threads(monkeypatch: Any) -> list[str]:
    """The name of the thread of every Rich rendering of a part from now on."""
    threads: list[str] = []
    real = markdown_render.render_part

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(markdown_render, "render_part", recording)
    return threads


def test_a_long_stored_reply_renders_only_the_parts_on_screen(tmp_path: Path) -> None:
    reply = long_markdown(2_000)  # about 190 KB, some 160 parts

    async def scenario() -> None:
        async with opened(tmp_path, "Long", [("write a lot", reply)]) as (app, _pilot):
            body = reply_body(app)
            parts = body.rows.parts
            assert body.source == reply and len(parts) > 100
            rendered = [part for part in parts if part.key is not None]
            # The screen shows the end of the reply: a few parts rendered, not all of them.
            assert 0 < len(rendered) < 10 and parts[-1].key is not None
            text = screen_text(app)
            assert "Section 1999" in text and "## Section" not in text  # rendered Markdown
            assert app.view.scroll_y >= app.view.max_scroll_y  # opened at its end

    run(scenario)


def test_a_long_part_renders_on_the_render_thread(tmp_path: Path, monkeypatch: Any) -> None:
    # One code block with no place to cut it: a single part, too long to render on the loop.
    code = "```python\n" + "".join(f"value_{i} = {i} * 2\n" for i in range(150)) + "```\n"
    assert len(code) > part_rows.SYNC_CHARS
    threads = render_threads(monkeypatch)

    async def scenario() -> None:
        async with opened(tmp_path, "Code", [("code please", code)]) as (app, _pilot):
            body = reply_body(app)
            assert len(body.rows.parts) == 1 and body.rows.parts[0].key is not None
            assert "chatterm-render" in threads and "MainThread" not in threads
            text = screen_text(app)
            assert "value_149 = 149 * 2" in text and "```" not in text

    run(scenario)


def test_a_reply_taller_than_the_cap_shows_its_end_and_opens_whole(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(frozen_markdown, "MAX_INLINE_ROWS", 120)
    reply = "".join(f"Paragraph number {i}.\n\n" for i in range(400))

    async def scenario() -> None:
        async with opened(tmp_path, "Tall", [("many paragraphs", reply)]) as (app, pilot):
            body = reply_body(app)
            assert body.cut_rows > 0 and body.size.height == 121  # the cap and the notice
            text = screen_text(app)
            assert "Paragraph number 399." in text
            app.view.scroll_home(animate=False, immediate=True)
            await pilot.pause()
            text = screen_text(app)
            assert f"{body.cut_rows:,} earlier rows not shown here" in text
            assert "o opens the whole reply" in text
            view = app.view.message_views()[-1]
            view.focus()
            await pilot.press("o")
            await wait_for(lambda: isinstance(app.screen, ReaderScreen), pilot)
            reader = app.screen.query_one(ReplyReader)
            await drawn(app, pilot)
            # The same text in twins of its parts (renderings of their own, at its width).
            assert [p.source for p in reader.rows.parts] == [p.source for p in body.rows.parts]
            assert not set(map(id, reader.rows.parts)) & set(map(id, body.rows.parts))
            # Every row (its height is a number: the reader's own rows, at its width).
            assert reader.virtual_size.height == reader.rows.height > 120
            assert "Paragraph number 0." in screen_text(app)
            reader.scroll_end(animate=False, immediate=True)
            await drawn(app, pilot)
            assert "Paragraph number 399." in screen_text(app)
            await pilot.press("escape")
            await wait_for(lambda: not isinstance(app.screen, ReaderScreen), pilot)
            # A click on the notice opens the reader too.
            app.view.scroll_home(animate=False, immediate=True)
            await pilot.pause()
            assert await pilot.click(FrozenMarkdown, offset=(2, 0))
            await wait_for(lambda: isinstance(app.screen, ReaderScreen), pilot)

    run(scenario)


def test_a_line_too_long_for_markdown_is_folded_plain_and_sanitised(tmp_path: Path) -> None:
    line = "x" * 250_000 + "\x1b]52;c;PWNLONG\x07" + "y" * 50

    async def scenario() -> None:
        async with opened(tmp_path, "Line", [("one line", line)]) as (app, _pilot):
            body = reply_body(app)
            (part,) = body.rows.parts
            assert part.plain is not None and body.source == line  # stored byte-exact
            width = body.size.width
            assert body.rows.height == part.plain.count(width) >= 250_000 // width
            text = screen_text(app)
            assert "␛]52;c;PWNLONG" in text and "\x1b" not in text and "\x07" not in text
            assert "x" * (width - 1) in text

    run(scenario)


@pytest.mark.parametrize(
    ("text", "width", "rows"),
    [
        ("", 10, [""]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("ab\n\ncd", 4, ["ab", "", "cd"]),
        ("a\tb", 10, ["a    b"]),
        ("日本語テキスト", 4, ["日本", "語テ", "キス", "ト"]),
        ("é" * 6, 4, ["éééé", "éé"]),
        ("a\x1b[2Jb", 20, ["a␛[2Jb"]),
    ],
)
def test_plain_rows_fold_at_the_width_by_cells(text: str, width: int, rows: list[str]) -> None:
    folded = PlainRows(text)
    assert folded.count(width) == len(rows)
    assert [folded.row(width, y) for y in range(len(rows))] == rows
    assert folded.row(width, len(rows)) == ""  # past the end


def test_plain_rows_refold_at_a_new_width() -> None:
    folded = PlainRows("0123456789" * 3)
    assert folded.count(10) == 3 and folded.row(10, 2) == "0123456789"
    assert folded.count(7) == 5 and folded.row(7, 4) == "89"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="ab \n\t日é\u0301\x1b", max_size=40), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=3),
)
def test_plain_rows_grown_batch_by_batch_equal_the_whole_text_folded(
    batches: list[str], widths: list[int]
) -> None:
    """A streaming reply's huge plain part grows a batch at a time (PlainRows.append): at
    every width, before and after each batch, its rows are those of the whole text so far."""
    grown = PlainRows(batches[0])
    text = batches[0]
    grown.count(widths[0])  # folded at a width before it grows: refolded in place
    for batch in batches[1:]:
        grown.append(batch)
        text += batch
        for width in widths:
            whole = PlainRows(text)
            assert grown.count(width) == whole.count(width)
            assert [grown.row(width, y) for y in range(whole.count(width) + 1)] == [
                whole.row(width, y) for y in range(whole.count(width) + 1)
            ]


def test_a_growing_line_of_wide_characters_is_chopped_by_its_batches_not_its_length(
    monkeypatch: Any,
) -> None:
    """A streaming reply's huge line of CJK text: each batch chops the last row and the new
    text, not the whole line again (100 batches chopped 10 M characters for a 200 K line)."""
    from chatterm.tui.widgets import plain_rows

    chopped: list[int] = []
    real = plain_rows.chop_cells

    def counting(text: str, width: int) -> list[str]:
        chopped.append(len(text))
        return real(text, width)

    monkeypatch.setattr(plain_rows, "chop_cells", counting)
    batch = "漢字かな" * 500  # 2,000 wide characters
    grown = PlainRows(batch)
    grown.count(80)
    for _ in range(99):
        grown.append(batch)
    whole = len(batch) * 100
    assert sum(chopped) < 2 * whole  # linear: each character chopped about once
    assert grown.count(80) == PlainRows(batch * 100).count(80) == -(-2 * whole // 80)
    assert grown.row(80, 2_000) == PlainRows(batch * 100).row(80, 2_000)


def test_rows_kept_up_to_date_while_streaming_equal_a_fresh_layout(
    tmp_path: Path, openai_server: Any
) -> None:
    from test_tui import send, server_choice

    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "chunks:2000:markdown"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "write a long report")
            await drawn(app, pilot)
            rows = reply_body(app).rows
            assert len(rows.parts) > 5  # streamed in many finished parts
            # Starts shifted part by part (appends, renderings coming back) are what a
            # layout from scratch gives.
            kept = (list(rows.starts), rows.height)
            rows.stale = True
            assert rows.key is not None
            rows.layout(rows.key[0], app)
            assert (rows.starts, rows.height) == kept

    run(scenario)


def test_opening_a_conversation_reads_it_off_the_event_loop(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from chatterm.store import HistoryStore

    reads: list[tuple[str, bool]] = []
    real = HistoryStore.branch

    def recording(self: HistoryStore, conv_id: str) -> Any:
        reads.append((threading.current_thread().name, self.readonly))
        return real(self, conv_id)

    monkeypatch.setattr(HistoryStore, "branch", recording)
    cuts: list[str] = []
    real_cut = part_rows._cut

    def recording_cut(source: str) -> list[str]:
        if len(source) > 10_000:
            cuts.append(threading.current_thread().name)
        return real_cut(source)

    monkeypatch.setattr(part_rows, "_cut", recording_cut)
    long_reply = long_markdown(300)

    async def scenario() -> None:
        pairs = [("q", "an answer"), ("more", long_reply)]
        async with opened(tmp_path, "Read", pairs) as (app, _pilot):
            assert "Section 299" in screen_text(app)
            assert reply_body(app).source == long_reply
        # Read in a worker thread, on a read-only connection of its own; the long reply cut
        # into parts on that thread too.
        assert reads and all(name != "MainThread" and readonly for name, readonly in reads)
        assert cuts and "MainThread" not in cuts

    run(scenario)


def test_the_sidebar_narrows_on_a_narrow_terminal_and_widens_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, CHOICE)
        async with app.run_test(size=(80, 30)) as pilot:
            await pilot.pause()
            narrow = app.query_one("#sidebar").size.width
            await pilot.resize_terminal(130, 30)
            await pilot.pause()
            wide = app.query_one("#sidebar").size.width
            await pilot.resize_terminal(80, 30)
            await pilot.pause()
            assert narrow < wide and app.query_one("#sidebar").size.width == narrow

    run(scenario)


def test_a_rendering_that_fails_leaves_the_plain_text_and_one_notice(
    tmp_path: Path, monkeypatch: Any
) -> None:
    code = "```python\n" + "".join(f"value_{i} = {i}\n" for i in range(200)) + "```\n"

    def broken(*args: Any) -> Any:
        raise RuntimeError("token=sk-secret in a renderer bug")

    monkeypatch.setattr(markdown_render, "render_part", broken)

    async def scenario() -> None:
        async with opened(tmp_path, "Broken", [("code", code)]) as (app, pilot):
            await drawn(app, pilot)
            (part,) = reply_body(app).rows.parts
            assert part.plain is not None  # shown as its text from now on
            assert "value_199 = 199" in screen_text(app)
            errors = [text for severity, text in app.notices if severity == "error"]
            assert errors == ["unexpected error (RuntimeError) while drawing a reply; "
                              "run with --debug for details"]
            assert app.is_running

    run(scenario)


# --- the reader, skipped renderings, shared parts, the live segment -------------------------


def _consistent(rows: Any) -> list[int]:
    """Indexes of rendered parts whose rows in ``starts`` are not their rendered height."""
    key = rows.key
    bad = []
    for i, part in enumerate(rows.parts):
        if part.key != key or part.plain is not None:
            continue
        end = rows.starts[i + 1] - 1 if i + 1 < len(rows.starts) else rows.height
        if end - rows.starts[i] != len(part.lines):
            bad.append(i)
    return bad


def test_reader_renders_only_what_is_on_screen(tmp_path: Path, monkeypatch: Any) -> None:
    """The reader renders the parts it shows, like the inline reply: opening it on a long
    reply does not render every part on the event loop."""
    monkeypatch.setattr(frozen_markdown, "MAX_INLINE_ROWS", 120)
    reply = long_markdown(2_000)  # ~160 parts
    calls = render_threads(monkeypatch)

    async def scenario() -> None:
        async with opened(tmp_path, "Long", [("q", reply)]) as (app, pilot):
            body = reply_body(app)
            assert len(body.rows.parts) > 100
            calls.clear()
            app.view.message_views()[-1].focus()
            await pilot.press("o")
            await wait_for(lambda: isinstance(app.screen, ReaderScreen), pilot)
            await drawn(app, pilot)
            on_loop = calls.count("MainThread")
            assert on_loop < 20, f"{on_loop} parts rendered on the event loop by the reader"

    run(scenario)


def test_a_skipped_render_job_is_asked_again(tmp_path: Path) -> None:
    """A background rendering skipped because the theme changed while it waited is asked for
    again when the part is drawn in that theme again (it does not stay a placeholder)."""
    para = lambda n: " ".join(f"word{n}x{i}" for i in range(170)) + "\n\n"  # noqa: E731
    code = "```python\n" + "".join(f"value_{i} = {i} * 2\n" for i in range(150)) + "```\n"
    reply = para(1) + para(2) + code + "\nThe end.\n"
    started, release = threading.Event(), threading.Event()

    async def scenario() -> None:
        app, store = make_app(tmp_path, CHOICE)
        conv = seed(store, "Code", [("q", reply)])
        async with app.run_test(size=SIZE) as pilot:
            await drawn(app, pilot)
            QUEUE.submit(lambda: (started.set(), release.wait(30)),
                         lambda _r, _e: None, lambda: True)
            await wait_for(started.is_set, pilot)
            await app.open_conversation(conv)
            await pilot.pause()
            await pilot.pause()
            rows = reply_body(app).rows
            code_part = next(p for p in rows.parts if p.source.startswith("```"))
            assert code_part.asked == rows.key  # queued behind the blocker
            first = rows.key
            app.view.scroll_home(animate=False, immediate=True)
            await pilot.pause()
            other = next(name for name in app.available_themes if name != app.theme)
            original = app.theme
            app.theme = other
            await pilot.pause()
            await pilot.pause()
            assert rows.key != first and code_part.asked == first  # not drawn meanwhile
            release.set()
            await QUEUE.idle()  # the job is skipped: the theme is not its theme
            app.theme = original
            await pilot.pause()
            app.view.scroll_end(animate=False, immediate=True)
            await drawn(app, pilot)
            await drawn(app, pilot)
            assert rows.key == first
            text = screen_text(app)
            assert code_part.key == first, "never rendered again: still its placeholder"
            assert "```" not in text

    try:
        run(scenario)
    finally:
        release.set()


def test_the_live_segment_renders_off_the_loop(tmp_path: Path, openai_server: Any,
                                               monkeypatch: Any) -> None:
    """No part of a streaming reply, the live segment included, is rendered by Rich on the
    event loop: they all go to the render thread."""
    from test_tui import send

    on_loop: list[int] = []
    real = part_rows.PartRows._render

    def recording(self: part_rows.PartRows, source: str, width: int) -> Any:
        # Renderings on the calling thread (the render thread's go through the queue).
        if threading.current_thread().name == "MainThread" and self.background:
            on_loop.append(len(source))
        return real(self, source, width)

    monkeypatch.setattr(part_rows.PartRows, "_render", recording)

    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "slow:40:40@review"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "write a long report")
            await drawn(app, pilot)
            assert on_loop == [], f"{len(on_loop)} renders of a streaming reply on the loop"

    run(scenario)


def test_two_part_rows_sharing_parts_keep_their_starts(tmp_path: Path, monkeypatch: Any) -> None:
    """Two part rows over the very same parts at two widths (the reader uses twins now, but
    the bookkeeping must hold anyway): a part rendered again shifts the later starts by its
    change from the height they were laid out with, so no row is hidden or doubled."""
    from rich.style import Style

    # Every part drawn is rendered in place (this is about the rows, not the loop's budget).
    monkeypatch.setattr(part_rows, "SYNC_BUDGET", part_rows.SyncBudget(allowance=60.0))

    reply = long_markdown(300)

    async def scenario() -> None:
        async with opened(tmp_path, "Long", [("q", reply)]) as (app, _pilot):
            inline = reply_body(app).rows
            width = inline.key[0]
            last = len(inline.parts) - 2
            y = inline.starts[last] + 1
            inline.strip(y, width, Style())  # drawn inline: starts hold its real height
            assert inline.parts[last].key == inline.key and _consistent(inline) == []
            reader = part_rows.PartRows("", lambda start, change: None)
            reader.parts = inline.parts  # as ReplyReader.__init__
            reader.layout(width + 30, app)
            reader.strip(reader.starts[last] + 1, width + 30, Style())
            inline.strip(y, width, Style())  # the inline reply drawn again after Esc
            assert _consistent(inline) == [], "inline starts shifted by a wrong height change"

    run(scenario)


def test_the_reader_opened_while_a_reply_streams_shows_it_whole(
    tmp_path: Path, openai_server: Any
) -> None:
    """The reader opened on a streaming reply takes in what the reply adds, the live text
    included, until the reply ends."""
    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "slow:60:40@reader"))
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "go"
            await pilot.press("enter")
            await wait_for(lambda: "tok5" in screen_text(app), pilot)
            view = app.view.message_views()[-1]
            view.focus()
            await type_now(app, "o")
            await wait_for(lambda: isinstance(app.screen, ReaderScreen), pilot)
            await settle(app, pilot)  # the reply ends, the reader still open
            await drawn(app, pilot)
            assert isinstance(app.screen, ReaderScreen)
            # The reader takes in what the reply added a few times a second (ReaderScreen).
            await wait_for(lambda: "tok59" in screen_text(app), pilot)
            await wait_for(lambda: "streaming" not in screen_text(app), pilot)

    run(scenario)


def test_a_key_or_click_posted_to_the_app_holds_a_stream_until_it_is_drawn(
    tmp_path: Path,
) -> None:
    """What the streaming loop asks once per chunk (ConversationController.input_pending): a
    posted key or mouse event says so once, and what it gives to await ends after the key
    reached the prompt and the screen was drawn; other messages say nothing."""
    from textual import events

    async def scenario() -> None:
        app, _ = make_app(tmp_path, CHOICE)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            pending = app.controller.input_pending
            assert pending is not None
            started = pending()  # whatever the start-up posted
            if started is not None:
                await started
            app.prompt_input.focus()
            await pilot.pause()
            drawn: list[str] = []
            app.post_message(events.Key("x", "x"))
            handled = pending()
            assert handled is not None and pending() is None
            app.call_after_refresh(lambda: drawn.append(app.prompt_input.text))
            await handled
            assert app.prompt_input.text == "x" and drawn == ["x"]
            app.post_message(events.Resize(app.size, app.size))
            assert pending() is None
            app.post_message(events.MouseScrollDown(app, 1, 1, 0, 0, 0, False, False, False))
            handled = pending()
            assert handled is not None
            await handled

    run(scenario)


def test_a_streaming_reply_with_no_safe_cut_grows_by_its_batches_not_its_length(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 MB of one paragraph (no place to cut it): past PLAIN_CHARS its live segment grows a
    batch at a time and moves into the frozen rendering whole; no batch, and not the end,
    cuts or folds the whole text again (that cost grew with the reply: 0.14 s per batch at
    20 MB). What is shown is still the reply, byte for byte."""
    from test_tui import send, server_choice

    from chatterm.tui.widgets import streaming

    monkeypatch.setattr(streaming, "BATCH_CHARS", 128 * 1024)  # many batches, many appends
    prepared: list[int] = []
    real = part_rows.prepare

    def recording(source: str) -> Any:
        prepared.append(len(source))
        return real(source)

    monkeypatch.setattr(part_rows, "prepare", recording)

    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "big:2:64"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "go")
            await drawn(app, pilot)
            body = reply_body(app)
            reply = app.last_streamer
            assert reply is not None and len(reply.text) == 2 * 1024 * 1024
            assert body.source == reply.text
            assert len(body.rows.parts) == 1 and body.rows.parts[0].plain is not None
            # Nothing longer than a few batches was ever cut into parts from scratch.
            assert max(prepared) < 4 * 128 * 1024 + part_rows.PLAIN_CHARS
            assert body.rows.height == PlainRows(reply.text).count(body.size.width)

    run(scenario)


def test_text_read_inside_a_capped_reply_stays_put_while_the_reply_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply taller than MAX_INLINE_ROWS shows its last rows; as it grows, the rows shown
    begin later. A user who scrolled up into it keeps reading the same row at the same place
    (it used to slide up by what was added), and one following the end keeps following."""
    monkeypatch.setattr(frozen_markdown, "MAX_INLINE_ROWS", 60)
    answer = "\n\n".join(f"line {i}" for i in range(100))

    def top_row(app: Any, body: FrozenMarkdown) -> str:
        top = app.view.region.y - body.region.y
        return "".join(segment.text for segment in body.render_line(top)).strip()

    async def scenario() -> None:
        app, store = make_app(tmp_path, CHOICE)
        conv_id = seed(store, "long", [("q", answer)])
        app, _ = make_app(tmp_path, CHOICE, session_id=conv_id)
        async with app.run_test(size=SIZE) as pilot:
            await drawn(app, pilot)
            body = reply_body(app)
            assert body.cut_rows > 0
            # Up into the reply, far enough from its first inline row that 20 more rows at its
            # end do not cut the row read away.
            app.view.scroll_to(y=app.view.scroll_y - 10, animate=False, immediate=True)
            await drawn(app, pilot)
            before = top_row(app, body)
            assert before.startswith("line")
            body.extend_parts(["\n\n".join(f"more {i}" for i in range(10))])
            await drawn(app, pilot)
            assert top_row(app, body) == before  # not slid up by the 20 rows added
            app.view.scroll_end(animate=False, immediate=True)
            await drawn(app, pilot)
            body.extend_parts(["\n\n".join(f"last {i}" for i in range(10))])
            await drawn(app, pilot)
            assert app.view.scroll_y >= app.view.max_scroll_y  # still at the end

    run(scenario)


def test_small_parts_past_the_loops_allowance_render_on_the_render_thread(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A screen of short parts is not all rendered in one frame on the event loop: past the
    allowance they go to the render thread, and the screen still ends up rendered."""
    threads = render_threads(monkeypatch)
    monkeypatch.setattr(part_rows, "SYNC_BUDGET", part_rows.SyncBudget(allowance=0.0))

    async def scenario() -> None:
        pairs = [("a list", long_markdown(40))]
        async with opened(tmp_path, "Short parts", pairs) as (app, pilot):
            await drawn(app, pilot)
            assert threads and set(threads) == {"chatterm-render"}
            text = screen_text(app)
            assert "Section 39" in text and "## Section" not in text  # rendered Markdown

    run(scenario)


def test_the_sync_budget_refills_each_window() -> None:
    eight_ms = int(0.008 / part_rows.SYNC_COST_PER_CHAR_S)  # characters, by the estimate
    budget = part_rows.SyncBudget(allowance=0.010, window=3600.0)
    assert budget.allows(eight_ms)
    budget.spend(0.008)
    assert not budget.allows(eight_ms) and budget.allows(eight_ms // 10)
    budget._start -= 3600.0  # the window has passed
    assert budget.allows(eight_ms)


def test_input_on_screen_says_whether_typed_input_is_still_on_its_way(tmp_path: Path) -> None:
    """What the streaming reply's batches and returning renderings ask (the app's
    input_on_screen): nothing to wait for when no input is on its way; after a key, an
    awaitable that ends once the key is in the prompt and drawn; and nothing again after."""
    from textual import events

    async def scenario() -> None:
        app, _ = make_app(tmp_path, CHOICE)
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.focus()
            await pilot.pause()
            while (settling := app.input_on_screen()) is not None:  # the start-up's input
                await settling
            assert app.input_on_screen() is None
            app.post_message(events.Key("x", "x"))
            waiting = app.input_on_screen()
            assert waiting is not None
            drawn: list[str] = []
            app.call_after_refresh(lambda: drawn.append(app.prompt_input.text))
            await waiting
            assert app.prompt_input.text == "x" and drawn == ["x"]
            assert app.input_on_screen() is None

    run(scenario)


def test_a_rendering_that_comes_back_while_input_is_on_its_way_waits_for_it(
    tmp_path: Path,
) -> None:
    """A part's rendering from the render thread is shown only once typed input on its way
    is drawn (PartRows.wait_for): it changes rows, often every row on screen, and the key
    would wait for that frame too. Once the input is drawn, the rendering is shown."""
    reply = "Some *text* that renders.\n"

    async def scenario() -> None:
        async with opened(tmp_path, "T", [("q", reply)]) as (app, pilot):
            body = reply_body(app)
            rows = body.rows
            key = rows.key
            assert key is not None
            gate = asyncio.Event()
            rows.wait_for = gate.wait
            rows.background = True
            rows.replace("Other *text*, rendered on the thread.\n", keep_shown=False)
            body.refresh(layout=True)
            await pilot.pause()
            part = rows.parts[0]
            assert part.asked == key
            await wait_for(lambda: bool(rows._later), pilot)  # rendered, waiting at the gate
            await pilot.pause()
            assert part.key != key and part.asked == key  # not shown, not asked again
            assert QUEUE.busy()  # still pending: idle() means shown, not only rendered
            gate.set()
            await QUEUE.idle()
            assert part.key == key
            await pilot.pause()
            assert "Other text, rendered on the thread." in screen_text(app)
            # One that waits when its view goes away: dropped, the part free to be asked again.
            gate.clear()
            rows.replace("A third *text*.\n", keep_shown=False)
            body.refresh(layout=True)
            await wait_for(lambda: bool(rows._later), pilot)
            third = rows.parts[0]
            rows.cancel_waiting()
            await QUEUE.idle()
            assert third.asked is None and third.key != key

    run(scenario)


def test_render_jobs_start_after_the_loop_callback_that_asked_for_them() -> None:
    """A part asked for while a frame is drawn is rendered once the loop is done with that
    frame: started at once, the render thread would take the interpreter from the rest of
    the frame at every switch interval."""
    import time

    started: list[float] = []

    def work() -> int:
        started.append(time.monotonic())
        return 1

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        QUEUE.submit(work, lambda value, error: result.set_result(value), lambda: True)
        time.sleep(0.2)  # the loop stays in this callback (a frame being drawn)
        assert started == []
        left_at = time.monotonic()
        assert await result == 1
        assert started and started[0] >= left_at

    asyncio.run(scenario())


def test_a_stored_replys_usual_part_renders_in_place_when_first_drawn(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A part of FROZEN_CHARS (how a stored reply is cut) fits the in-place allowance of a
    fresh window: opening a conversation shows it rendered, not as its plain text first."""
    from rich.style import Style

    from chatterm.markdown_blocks import FROZEN_CHARS

    monkeypatch.setattr(part_rows, "SYNC_BUDGET", part_rows.SyncBudget())
    assert FROZEN_CHARS * part_rows.SYNC_COST_PER_CHAR_S <= part_rows.SYNC_ALLOWANCE_S
    reply = long_markdown(3)
    assert len(reply) < FROZEN_CHARS

    async def scenario() -> None:
        async with opened(tmp_path, "T", [("q", reply)]) as (app, _pilot):
            rows = reply_body(app).rows
            assert rows.key is not None
            padded = reply + "x" * (FROZEN_CHARS - len(reply) - 1)
            rows.replace(padded, keep_shown=False)
            rows.layout(rows.key[0], app)
            part_rows.SYNC_BUDGET._start = 0.0  # a fresh window
            rows.strip(0, rows.key[0], Style())
            assert [p.key for p in rows.parts] == [rows.key]  # rendered here, at once

    run(scenario)


def test_messages_shorter_than_estimated_still_fill_the_view(tmp_path: Path) -> None:
    """How many messages to mount is estimated from their length; blank lines count there
    but Markdown shows one. When what is mounted does not fill the view there is nothing to
    scroll up with, so the older messages are mounted until it can scroll."""

    async def scenario() -> None:
        pairs = [(f"q{i}", "start" + "\n" * 400 + f"end {i}") for i in range(60)]
        async with opened(tmp_path, "Links", pairs) as (app, pilot):
            view = app.view
            await wait_for(lambda: view.max_scroll_y > 0 or not view.hidden, pilot)
            assert view.max_scroll_y > 0 and view.hidden  # fills, and not everything mounted
            assert view.message_views()[-1].text.endswith("end 59")

    run(scenario)


def test_a_taller_window_mounts_older_messages_to_fill_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        pairs = [(f"q{i}", f"answer {i}") for i in range(200)]
        async with opened(tmp_path, "Many", pairs) as (app, pilot):
            view = app.view
            mounted = len(view.message_views())
            assert view.hidden and view.max_scroll_y > 0
            await pilot.resize_terminal(100, 200)
            await wait_for(lambda: view.max_scroll_y > 0 or not view.hidden, pilot)
            assert len(view.message_views()) > mounted and view.max_scroll_y > 0

    run(scenario)
