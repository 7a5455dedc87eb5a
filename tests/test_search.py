"""Search over the history: snippets made from bounded windows, with the matches as spans.

Real SQLite files on disk. What is checked is behaviour: which hits, which snippet, where the
spans are, and how many bytes of a message are read to make its snippet (bench/bench_scale.py
measures the time).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, cast

from cli_run import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from chatterm.paths import history_path
from chatterm.snippets import OVERLAP, ROW_CHARS, SCAN_LIMIT, WINDOW, SnippetMaker, _rows
from chatterm.store import HistoryStore, SearchHit


def marked(hit: SearchHit) -> str:
    """The snippet with its spans in brackets, for readable assertions."""
    out, last = [], 0
    for start, end in hit.matches:
        out += [hit.snippet[last:start], "[", hit.snippet[start:end], "]"]
        last = end
    out.append(hit.snippet[last:])
    return "".join(out)


def reads_to_scan(size: int) -> int:
    """Bytes read to scan ``size`` bytes in windows that overlap by OVERLAP bytes."""
    return size * WINDOW // (WINDOW - OVERLAP) + WINDOW


def one_message_store(tmp_path: Path, content: str) -> tuple[HistoryStore, int]:
    store = HistoryStore(tmp_path / "h.db")
    conv = store.create_conversation("t")
    message = store.add_message(conv.id, "assistant", content)
    return store, message.id


def test_short_message_gets_fts5s_own_snippet_with_spans(tmp_path: Path) -> None:
    text = "Sorting a list in Python: use sorted(items) or items.sort() for in-place sorting."
    store, _ = one_message_store(tmp_path, text)
    with store:
        (hit,) = store.search("sort")
        fts = store._db.execute(
            "SELECT snippet(messages_fts, 0, '[', ']', '…', 12) FROM messages_fts"
            " WHERE messages_fts MATCH '\"sort\"*'"
        ).fetchone()[0]
    assert marked(hit) == fts
    assert marked(hit) == "…use [sorted](items) or items.[sort]() for in-place [sorting]."
    assert [hit.snippet[a:b] for a, b in hit.matches] == ["sorted", "sort", "sorting"]


def test_case_and_diacritics_fold_like_the_index(tmp_path: Path) -> None:
    store, _ = one_message_store(tmp_path, "Ein Kümquat, zwei KUMQUATS.")
    with store:
        (hit,) = store.search("kumquat")
    assert marked(hit) == "Ein [Kümquat], zwei [KUMQUATS]."


def test_every_word_must_match_and_each_is_marked(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        both = store.add_message(conv.id, "user", "the red fox and the blue hen")
        store.add_message(conv.id, "assistant", "only a red herring")
        hits = store.search("red hen")
    assert [h.message_id for h in hits] == [both.id]
    assert marked(hits[0]) == "the [red] fox and the blue [hen]"


def test_a_reply_matching_on_every_word_gives_a_short_snippet_read_from_one_window(
    tmp_path: Path,
) -> None:
    text = " ".join(f"tok{i}" for i in range(40_000))  # 40,000 words, every one a match
    store, message_id = one_message_store(tmp_path, text)
    with store:
        counting = CountingDB(store._db)
        snippets = SnippetMaker(cast(sqlite3.Connection, counting), "messages", "content").make(
            [message_id], ["tok"]
        )
        (hit,) = store.search("tok")
    assert counting.bytes_read <= WINDOW  # not the 270 KB of the message
    assert snippets[message_id].text == hit.snippet
    assert hit.snippet == " ".join(f"tok{i}" for i in range(12)) + "…"
    assert len(hit.matches) == 12
    assert all(hit.snippet[a:b].startswith("tok") for a, b in hit.matches)


def test_a_match_far_into_a_long_message_is_found_with_bounded_reads(tmp_path: Path) -> None:
    filler = "lorem ipsum dolor sit amet " * 4000  # 108 KB before the match
    store, message_id = one_message_store(tmp_path, filler + "a ripe kumquat here " + filler)
    with store:
        counting = CountingDB(store._db)
        snippet = SnippetMaker(cast(sqlite3.Connection, counting), "messages", "content").make(
            [message_id], ["kumquat"]
        )
        (hit,) = store.search("kumquat")
    assert snippet[message_id].text == hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "[kumquat]" in marked(hit)
    assert len(hit.matches) == 1
    # Only the windows up to the match were read, never the rest of the message.
    assert counting.bytes_read <= reads_to_scan(len(filler) + WINDOW)


def test_a_match_beyond_the_scan_limit_gives_the_opening_words(tmp_path: Path) -> None:
    filler = "lorem ipsum dolor sit amet " * (SCAN_LIMIT // 27 + 100)
    store, message_id = one_message_store(tmp_path, filler + "kumquat")
    with store:
        counting = CountingDB(store._db)
        SnippetMaker(cast(sqlite3.Connection, counting), "messages", "content").make(
            [message_id], ["kumquat"]
        )
        (hit,) = store.search("kumquat")
    assert hit.message_id == message_id  # still found: FTS5 finds, the snippet is bounded
    assert hit.snippet == "lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum…"
    assert hit.matches == ()
    assert counting.bytes_read <= reads_to_scan(SCAN_LIMIT + WINDOW)


def test_marker_characters_in_the_text_do_not_confuse_the_spans(tmp_path: Path) -> None:
    text = "odd \ue000 and \ue001 chars around kumquat \ue002\ue003 end"
    store, _ = one_message_store(tmp_path, text)
    with store:
        (hit,) = store.search("kumquat")
    assert hit.snippet == text
    assert marked(hit) == "odd \ue000 and \ue001 chars around [kumquat] \ue002\ue003 end"


def test_multibyte_text_cut_at_window_edges_stays_whole(tmp_path: Path) -> None:
    filler = "日本語のテキスト éèê " * 600  # multi-byte characters across every window edge
    store, _ = one_message_store(tmp_path, filler + "Kumquat " + filler)
    with store:
        (hit,) = store.search("kumquat")
    assert "\ufffd" not in hit.snippet
    assert [hit.snippet[a:b] for a, b in hit.matches] == ["Kumquat"]
    assert hit.snippet.strip("…") in filler + "Kumquat " + filler


def test_search_still_ranks_and_limits(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        ids = [store.add_message(conv.id, "user", f"kumquat {'x ' * i}").id for i in range(30)]
        hits = store.search("kumquat", limit=5)
    assert [h.message_id for h in hits] == ids[:5]  # bm25: the shortest messages rank first
    assert all(marked(h).startswith("[kumquat]") for h in hits)


WORD = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(
    words=st.lists(WORD, min_size=1, max_size=3000),
    pick=st.integers(min_value=0),
    sep=st.sampled_from([" ", "\n", ", ", " — "]),
)
def test_spans_always_cover_matching_words_of_the_real_text(
    tmp_path_factory: Any, words: list[str], pick: int, sep: str
) -> None:
    text = sep.join(words)
    query = words[pick % len(words)][:3]
    store, message_id = one_message_store(tmp_path_factory.mktemp("h"), text)
    with store:
        (hit,) = store.search(query)
    assert hit.message_id == message_id
    assert hit.matches, marked(hit)
    for start, end in hit.matches:
        assert hit.snippet[start:end].startswith(query)
    assert hit.snippet.strip("…") in text


class CountingDB:
    """The store's connection, counting the bytes read through blob I/O."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.bytes_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def blobopen(self, *args: Any, **kwargs: Any) -> Any:
        return CountingBlob(self, self._db.blobopen(*args, **kwargs))


class CountingBlob:
    def __init__(self, owner: CountingDB, blob: sqlite3.Blob) -> None:
        self._owner = owner
        self._blob = blob

    def __enter__(self) -> CountingBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self._blob.close()

    def __len__(self) -> int:
        return len(self._blob)

    def seek(self, offset: int, origin: int = 0) -> None:
        self._blob.seek(offset, origin)

    def read(self, length: int = -1) -> bytes:
        data = self._blob.read(length)
        self._owner.bytes_read += len(data)
        return data


def test_cli_search_json_gives_the_match_spans() -> None:
    with HistoryStore(history_path()) as store:
        conv = store.create_conversation("fruit")
        store.add_message(conv.id, "user", "a ripe kumquat")
    proc = run_cli("sessions", "search", "kumq", "--json")
    assert proc.returncode == 0, proc.stderr
    (hit,) = json.loads(proc.stdout)
    assert hit["snippet"] == "a ripe kumquat"
    assert hit["matches"] == [[7, 14]]


def test_a_reply_kept_in_pieces_gets_a_bounded_snippet_with_spans(tmp_path: Path) -> None:
    """Replies streamed in pieces (a big one stays so): FTS5's snippet() over a whole 3 MB
    piece took over a minute; the snippet comes from a window of the first matching piece."""
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(reply.id, "lorem ipsum dolor sit amet " * 120_000)  # 3.2 MB, one piece
        store.append_pieces(reply.id, "and a ripe kumquat at the end")
        counting = CountingDB(store._db)
        store._db = cast(sqlite3.Connection, counting)
        try:
            (hit,) = store.search("ipsum")
            (late,) = store.search("kumquat")
        finally:
            store._db = counting._db
    assert hit.message_id == reply.id and late.message_id == reply.id
    assert marked(hit).startswith("lorem [ipsum] dolor sit amet lorem [ipsum]")
    assert hit.snippet.endswith("…")
    assert marked(late) == "and a ripe [kumquat] at the end"
    assert counting.bytes_read <= 2 * WINDOW


# --- issue 9: time independent of the matches one message holds -----------------------------


def test_a_dense_message_gets_a_snippet_from_one_short_row(tmp_path: Path) -> None:
    """``t t t …``: every token a match. FTS5's snippet() is quadratic in the matches of its
    row, so it is only ever given one row of at most ROW_CHARS characters per hit."""
    store, message_id = one_message_store(tmp_path, "t " * 20_000)
    with store:
        (hit,) = store.search("t")
        left = store._db.execute("SELECT count(*) FROM temp.chatterm_snippet_window").fetchone()
    assert hit.message_id == message_id
    assert hit.snippet == "t " * 11 + "t…"
    assert len(hit.snippet) <= ROW_CHARS + 2
    assert [hit.snippet[a:b] for a, b in hit.matches] == ["t"] * 12
    assert left == (0,)  # the snippet rows were rolled back, nothing is kept between searches


def test_the_snippet_comes_from_where_all_the_words_are(tmp_path: Path) -> None:
    early = "a kumquat alone at the start, " + "filler words go on and on here " * 9
    text = early + "then a ripe kumquat next to a quince, and more filler after it"
    assert any("kumquat next to a quince" in row for row in _rows(text))  # one row holds both
    store, _ = one_message_store(tmp_path, text)
    with store:
        (both,) = store.search("kumquat quince")
        (one,) = store.search("kumquat")
    assert "[kumquat] next to a [quince]" in marked(both)
    assert both.snippet.startswith("…") and both.snippet.endswith("…")
    assert marked(one).startswith("a [kumquat] alone at the start")  # the first one
    assert one.snippet.endswith("…")


def test_prefixes_of_every_length_find_a_reply_of_distinct_words(tmp_path: Path) -> None:
    """The bench's worst case: one 40,000-word reply whose every word is distinct and starts
    with the query (the prefix index answers up to 4 characters from one list)."""
    text = " ".join(f"tok{i}" for i in range(40_000))
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        other = store.add_message(conv.id, "user", "a token or two")
        huge = store.add_message(conv.id, "assistant", text)
        for query in ("t", "to", "tok"):
            assert {h.message_id for h in store.search(query)} == {other.id, huge.id}, query
        for query, first in (("tok1", "tok1"), ("tok39", "tok39"), ("tok3999", "tok3999")):
            (hit,) = store.search(query)
            assert hit.message_id == huge.id
            assert hit.snippet[hit.matches[0][0]:hit.matches[0][1]] == first
            assert len(hit.snippet) <= ROW_CHARS + 2
        assert [h.message_id for h in store.search("tok39999")] == [huge.id]
        assert store.search("tok40000") == []
        assert [h.message_id for h in store.search("toke")] == [other.id]


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab \n—é日"), max_size=2000))
def test_snippet_rows_are_short_and_lose_only_the_separators_they_were_cut_at(text: str) -> None:
    rows = _rows(text)
    assert all(len(row) <= ROW_CHARS for row in rows)
    rest = text  # the rows, in order, each followed by the separator it was cut at, if any
    for row in rows:
        assert rest.startswith(row)
        rest = rest[len(row):]
        if rest[:1] in (" ", "\n"):
            rest = rest[1:]
    assert rest == ""
