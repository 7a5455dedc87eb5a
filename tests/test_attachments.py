"""Attachments (-f files and directories, -a images) and templates (-t), end to end.

The CLI runs in a subprocess against the loopback server (tests/openai_server.py), which records
every request body, so each test checks the exact bytes a server would have received. The
history is the real SQLite file the CLI wrote.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, modules_loaded_by, run_cli

from chatterm.attachments import (
    AttachmentError,
    compose_with_files,
    fence_for,
    gather,
    image_mime,
    language_of,
    parse_gitignore,
    render_file,
    walk_text_candidates,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(40))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(30))
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(range(30))
GIF = b"GIF89a\x01\x00\x01\x00" + bytes(range(20))


@pytest.fixture
def env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test"}


def history_db() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"


def rows(sql: str) -> list[tuple]:  # type: ignore[type-arg]
    db = sqlite3.connect(history_db())
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def bodies(server, model: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [r.body for r in server.requests_for(model)]


def user_content(body: dict) -> object:  # type: ignore[type-arg]
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


# --- layout and the gitignore matcher (pure functions) -------------------------------------


def test_fence_is_longer_than_any_backtick_run_and_language_comes_from_the_name() -> None:
    assert fence_for("no ticks") == "```"
    assert fence_for("a ``` b ````` c") == "``````"
    assert language_of("src/app.py") == "python"
    assert language_of("Dockerfile") == "dockerfile"
    assert language_of("notes.unknownext") == ""
    assert render_file("x.md", "a\n```\nb") == "File: x.md\n````markdown\na\n```\nb\n````"


def test_files_come_first_and_the_question_last() -> None:
    text = compose_with_files("why?", [("a.py", "x = 1\n"), ("b.txt", "hello")])
    assert text == (
        "File: a.py\n```python\nx = 1\n```\n\nFile: b.txt\n```text\nhello\n```\n\nwhy?"
    )
    assert compose_with_files("only", []) == "only"


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "ignored"),
    [
        ("*.log", "a.log", False, True),
        ("*.log", "deep/er/a.log", False, True),
        ("*.log", "a.logx", False, False),
        ("build/", "build", True, True),
        ("build/", "build", False, False),
        ("build/", "src/build", True, True),
        ("/top.txt", "top.txt", False, True),
        ("/top.txt", "sub/top.txt", False, False),
        ("doc/*.md", "doc/a.md", False, True),
        ("doc/*.md", "doc/x/a.md", False, False),
        ("**/gen", "a/b/gen", True, True),
        ("a/**/z.c", "a/z.c", False, True),
        ("a/**/z.c", "a/b/c/z.c", False, True),
        ("logs/**", "logs/x/y", False, True),
        ("file?.txt", "file1.txt", False, True),
        ("file[0-9].txt", "filex.txt", False, False),
        ("# comment", "# comment", False, False),
    ],
)
def test_gitignore_patterns(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    from chatterm.attachments import GitIgnore

    rules = GitIgnore(tuple(parse_gitignore(pattern)))
    assert rules.ignored(path, is_dir) is ignored


def test_negation_and_nested_gitignore_files(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.txt\n!keep.txt\n/only-top.md\n")
    (tmp_path / "keep.txt").write_text("kept")
    (tmp_path / "drop.txt").write_text("dropped")
    (tmp_path / "only-top.md").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / ".gitignore").write_text("secret.py\n!*.txt\n")
    (sub / "only-top.md").write_text("nested copy is not anchored away")
    (sub / "secret.py").write_text("x")
    (sub / "ok.py").write_text("x")
    (sub / "back.txt").write_text("re-included by the nested file")
    names = [p.relative_to(tmp_path).as_posix() for p in walk_text_candidates(tmp_path)]
    assert names == [
        ".gitignore", "keep.txt", "sub/.gitignore", "sub/back.txt", "sub/ok.py", "sub/only-top.md"
    ]


def test_image_types_are_detected_by_their_bytes_not_their_name() -> None:
    assert [image_mime(d) for d in (PNG, JPEG, WEBP, GIF)] == [
        "image/png", "image/jpeg", "image/webp", "image/gif"
    ]
    assert image_mime(b"%PDF-1.7") is None


def test_gather_refuses_what_cannot_be_sent(tmp_path: Path) -> None:
    (tmp_path / "bin.dat").write_bytes(b"abc\x00def")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.png").write_text("not an image")
    cases = {
        str(tmp_path / "missing.txt"): "no such file",
        str(tmp_path / "bin.dat"): "binary file",
        str(tmp_path / "latin1.txt"): "not UTF-8",
        str(tmp_path / "empty"): "has no text files",
    }
    for spec, words in cases.items():
        with pytest.raises(AttachmentError) as info:
            gather([spec])
        assert words in info.value.message and "\n" not in info.value.message
    with pytest.raises(AttachmentError, match="not a PNG, JPEG, WebP or GIF"):
        gather(images=[str(tmp_path / "fake.png")])


# --- -f through the CLI ------------------------------------------------------------------------


def test_one_file_goes_into_the_prompt_with_its_name(openai_server, env, tmp_path: Path) -> None:
    source = tmp_path / "hello.py"
    source.write_text('print("hi")\n# ``` inside\n')
    result = run_cli("ask", "-m", "echo@f1", "-f", str(source), "explain", env=env)
    assert result.returncode == 0, result.stderr
    sent = user_content(bodies(openai_server, "echo@f1")[-1])
    assert sent == f'File: {source}\n````python\nprint("hi")\n# ``` inside\n````\n\nexplain'
    # Stored once as an attachment, the message itself keeps just the question.
    assert rows("SELECT content FROM messages WHERE role = 'user'")[-1] == ("explain",)
    assert stat.S_IMODE(history_db().stat().st_mode) == 0o600


def test_several_files_keep_their_order(openai_server, env, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.txt").write_text("ay")
    result = run_cli(
        "ask", "-m", "echo@f2", "-f", "b.txt", "-f", "a.txt", "compare", env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sent = user_content(bodies(openai_server, "echo@f2")[-1])
    assert sent == "File: b.txt\n```text\nbee\n```\n\nFile: a.txt\n```text\nay\n```\n\ncompare"


def test_a_directory_leaves_out_ignored_binary_vcs_and_venv_and_reports_the_cap(
    openai_server, env, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / ".git" / "config").write_text("[core]")
    (proj / "env").mkdir()
    (proj / "env" / "pyvenv.cfg").write_text("home = /usr")
    (proj / "env" / "lib.py").write_text("venv code")
    (proj / ".gitignore").write_text("*.log\nout/\n")
    (proj / "out").mkdir()
    (proj / "out" / "gen.py").write_text("generated")
    (proj / "debug.log").write_text("noise")
    (proj / "logo.bin").write_bytes(b"\x00\x01\x02")
    (proj / "a_main.py").write_text("main = 1\n")
    (proj / "m_big.txt").write_text("x" * (700 * 1024))
    (proj / "z_big.txt").write_text("y" * (700 * 1024))
    result = run_cli("ask", "-m", "echo@dir", "-f", "proj", "review", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sent = user_content(bodies(openai_server, "echo@dir")[-1])
    headers = [line for line in sent.splitlines() if line.startswith("File: ")]
    assert headers == ["File: proj/.gitignore", "File: proj/a_main.py", "File: proj/m_big.txt"]
    assert sent.endswith("\n\nreview")
    assert "left out 1 file(s) of proj over the 1 MB attachment cap: proj/z_big.txt" in (
        result.stderr
    )


def test_dash_reads_the_file_from_stdin(openai_server, env) -> None:
    result = run_cli("ask", "-m", "echo@dash", "-f", "-", "what is it?", input="piped\n", env=env)
    assert result.returncode == 0, result.stderr
    sent = user_content(bodies(openai_server, "echo@dash")[-1])
    assert sent == "File: stdin\n```\npiped\n```\n\nwhat is it?"


@pytest.mark.parametrize("kind", ["missing", "binary", "latin1", "empty-dir"])
def test_bad_files_are_one_line_rc_2_and_nothing_is_sent(
    openai_server, env, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "binary").write_bytes(b"\x7fELF\x00\x00")
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    (tmp_path / "empty-dir").mkdir()
    model = f"echo@bad-{kind}"
    result = run_cli("ask", "-m", model, "-f", str(tmp_path / kind), "q", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert openai_server.requests_for(model) == []
    assert not history_db().exists() or rows("SELECT count(*) FROM messages") == [(0,)]


# --- -a images --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp"), (GIF, "image/gif")],
)
def test_each_image_type_is_sent_as_a_data_url_part(
    openai_server, env, tmp_path: Path, data: bytes, mime: str
) -> None:
    image = tmp_path / "picture.bin"  # the name says nothing: the bytes decide
    image.write_bytes(data)
    model = f"echo@img-{mime}"
    result = run_cli("ask", "-m", model, "-a", str(image), "describe", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "describe\n"
    content = user_content(bodies(openai_server, model)[-1])
    assert content == [
        {"type": "text", "text": "describe"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"},
        },
    ]


def test_too_large_or_not_an_image_is_refused_with_the_limit(
    openai_server, env, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as fh:  # sparse: the size is checked before a byte is read
        fh.write(PNG)
        fh.truncate(20 * 1024 * 1024 + 1)
    result = run_cli("ask", "-m", "echo@big", "-a", str(big), "q", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "an image may be at most 20 MB" in result.stderr
    text = tmp_path / "notes.png"
    text.write_text("hello")
    result = run_cli("ask", "-m", "echo@big", "-a", str(text), "q", env=env)
    assert result.returncode == 2
    assert "not a PNG, JPEG, WebP or GIF image" in result.stderr
    assert openai_server.requests_for("echo@big") == []


# --- history: -c, show, export, search, deletion ----------------------------------------------


def test_continue_resends_attachments_exactly(openai_server, env, tmp_path: Path) -> None:
    (tmp_path / "spec.md").write_text("# Spec\nbe nice\n")
    (tmp_path / "shot.png").write_bytes(PNG)
    first = run_cli(
        "ask", "-m", "echo@cont", "-f", "spec.md", "-a", "shot.png", "read", env=env,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "spec.md").write_text("changed on disk afterwards")
    second = run_cli("ask", "-c", "-m", "echo@cont", "and then?", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    one, two = bodies(openai_server, "echo@cont")[-2:]
    assert two["messages"][0] == one["messages"][0]
    assert two["messages"][-1] == {"role": "user", "content": "and then?"}
    # --no-log continues from the same history and sends the same thing.
    third = run_cli("ask", "-c", "-n", "-m", "echo@cont", "and then?", env=env, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert bodies(openai_server, "echo@cont")[-1]["messages"][:3] == two["messages"]


def test_show_export_search_and_deletion(openai_server, env, tmp_path: Path) -> None:
    (tmp_path / "shared_notes.txt").write_text("shared text\n")
    (tmp_path / "pic.gif").write_bytes(GIF)
    args = ("-f", "shared_notes.txt", "-f", "shared_notes.txt", "-a", "pic.gif")
    first = run_cli("ask", "-m", "echo@hist", *args, "first", "--json", env=env, cwd=tmp_path)
    second = run_cli(
        "ask", "-m", "echo@hist", "-f", "shared_notes.txt", "second", "--json", env=env,
        cwd=tmp_path,
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    conv1 = json.loads(first.stdout)["conversation_id"]
    conv2 = json.loads(second.stdout)["conversation_id"]
    # Same file twice and in two conversations: one stored copy (plus the image).
    assert rows("SELECT count(*) FROM attachments") == [(2,)]

    show = run_cli("sessions", "show", conv1, env=env)
    assert "File: shared_notes.txt\n```text\nshared text\n```" in show.stdout
    assert "*Image: pic.gif (image/gif," in show.stdout

    exported = json.loads(run_cli("sessions", "export", conv1, "--format", "json", env=env).stdout)
    attached = exported["messages"][0]["attachments"]
    assert [a["name"] for a in attached] == ["shared_notes.txt", "pic.gif"]
    assert attached[0]["text"] == "shared text\n"
    assert base64.b64decode(attached[1]["data_base64"]) == GIF
    import hashlib

    assert attached[1]["sha256"] == hashlib.sha256(GIF).hexdigest()

    found = run_cli("sessions", "search", "shared_notes", "--json", env=env)
    # (The echo replies repeat the file, so full-text hits on them come too; the user's
    # messages are found by the attached file's name.)
    hits = {
        (h["conversation_id"], h["snippet"]) for h in json.loads(found.stdout) if h["role"] == "user"
    }
    assert hits == {(conv1, "attached: shared_notes.txt"), (conv2, "attached: shared_notes.txt")}

    assert run_cli("sessions", "rm", conv1, env=env).returncode == 0
    assert rows("SELECT count(*) FROM attachments") == [(1,)]  # the text is still used
    assert run_cli("sessions", "rm", conv2, env=env).returncode == 0
    assert rows("SELECT count(*) FROM attachments") == [(0,)]
    assert rows("SELECT count(*) FROM message_attachments") == [(0,)]


def test_ask_without_attachments_does_not_import_the_feature(env) -> None:
    code, found, _ = modules_loaded_by(
        ["ask", "-m", "echo@lazy", "hi"], ["chatterm.attachments"], env=env
    )
    assert code == 0
    assert found == []


# --- templates --------------------------------------------------------------------------------


TEMPLATES = """
[profiles.cold]
backend = "openai"
options = { temperature = 0.0 }

[templates.review]
description = "Review a change"
system_prompt = "You review code."
model = "echo@tpl"
options = { temperature = 0.3, max_tokens = 50 }
prompt = "Review this:\\n\\n{input}\\n\\nBe brief."

[templates.greet]
profile = "cold"
model = "echo@tpl2"
prompt = "Say hello"
"""


@pytest.fixture
def config_env(env, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(TEMPLATES)
    return {**env, "CHATTERM_CONFIG": str(path)}


def test_template_sets_system_options_and_pattern(openai_server, config_env) -> None:
    result = run_cli("ask", "-t", "review", "x = 1", input="diff text\n", env=config_env)
    assert result.returncode == 0, result.stderr
    body = bodies(openai_server, "echo@tpl")[-1]
    assert body["messages"] == [
        {"role": "system", "content": "You review code."},
        {"role": "user", "content": "Review this:\n\ndiff text\n\nx = 1\n\nBe brief."},
    ]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50
    conv = rows("SELECT id, template FROM conversations")
    assert conv[-1][1] == "review"
    shown = run_cli("sessions", "show", conv[-1][0], env=config_env)
    assert " · template review*" in shown.stdout
    exported = run_cli("sessions", "export", conv[-1][0], "--format", "json", env=config_env)
    assert json.loads(exported.stdout)["template"] == "review"


def test_flags_override_the_template(openai_server, config_env) -> None:
    result = run_cli(
        "ask", "-t", "review", "-m", "echo@tpl-flag", "-s", "Be terse.",
        "--temperature", "0.9", "-o", "max_tokens", "7", "code", env=config_env,
    )
    assert result.returncode == 0, result.stderr
    body = bodies(openai_server, "echo@tpl-flag")[-1]
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["temperature"] == 0.9 and body["max_tokens"] == 7


def test_template_with_a_profile_and_a_fixed_prompt(openai_server, config_env) -> None:
    result = run_cli("ask", "-t", "greet", env=config_env)
    assert result.returncode == 0, result.stderr
    body = bodies(openai_server, "echo@tpl2")[-1]
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert body["temperature"] == 0.0


def test_template_errors_and_listing(openai_server, config_env, tmp_path: Path) -> None:
    missing = run_cli("ask", "-t", "nope", "hi", env=config_env)
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr)
    assert "no template 'nope'" in missing.stderr and "greet, review" in missing.stderr
    empty = run_cli("ask", "-t", "review", env=config_env)
    assert empty.returncode == 2
    assert "template review needs input" in empty.stderr
    listing = run_cli("templates", "list", env=config_env)
    assert listing.stdout.splitlines() == ["greet", "review  Review a change"]
    shown = run_cli("templates", "show", "review", env=config_env)
    assert "system_prompt: You review code." in shown.stdout
    assert 'options: {"temperature": 0.3, "max_tokens": 50}' in shown.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[templates.x]\nsytem_prompt = "typo"\n')
    broken = run_cli("templates", "list", env={**config_env, "CHATTERM_CONFIG": str(bad)})
    assert broken.returncode == 2
    assert "[templates.x] has unknown key 'sytem_prompt'" in broken.stderr
    assert "(line 2)" in broken.stderr


# --- @path mentions (the TUI's prompt) ------------------------------------------------------


def test_at_paths_name_existing_files_only(tmp_path: Path) -> None:
    from chatterm.attachments import classify, split_at_paths

    (tmp_path / "notes.md").write_text("n")
    (tmp_path / "src").mkdir()
    (tmp_path / "shot.png").write_bytes(PNG)
    text, paths = split_at_paths(
        "ask @alice about @notes.md, @src and @shot.png (not a@notes.md) @notes.md", tmp_path
    )
    assert paths == ["notes.md", "src", "shot.png"]
    assert text == "ask @alice about notes.md, src and shot.png (not a@notes.md) notes.md"
    assert classify(str(tmp_path / "shot.png")) == "image"
    assert classify(str(tmp_path / "notes.md")) == "text"


def test_a_template_option_typo_is_refused_before_sending(openai_server, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text('[templates.t]\nmodel = "echo@typo"\noptions = { temprature = 0.1 }\n')
    result = run_cli("ask", "-t", "t", "hi", env={**env, "CHATTERM_CONFIG": str(path)})
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "no option 'temprature'" in result.stderr
    assert openai_server.requests_for("echo@typo") == []


def test_stdin_goes_to_one_attachment_only(env) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("ask", "-f", "-", "-a", "-", "q", input="x", env=env)
    assert result.returncode == 2
    assert "stdin can be attached only once" in result.stderr


def test_search_for_a_dotted_or_underscored_word_is_no_storage_error(tmp_path: Path) -> None:
    """Streamed replies are indexed in pieces (detail='column'), where app.py is a phrase."""
    from chatterm.store import HistoryStore

    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        store.add_message(conv.id, "user", "look at app.py and shared_notes")
        assert [h.role for h in store.search("app.py")] == ["user"]
        assert [h.role for h in store.search("shared_notes")] == ["user"]
