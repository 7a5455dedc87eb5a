"""Files and images handed to a model: reading them safely and laying them out in the prompt.

``chatterm ask -f PATH`` (text files, directories, ``-`` for stdin) and ``-a IMAGE`` go through
here, and so will the TUI. Everything is read and checked before anything is sent: a missing
file, a binary or non-UTF-8 file, an empty directory or an image that is too big is an
:class:`AttachmentError` (one line, exit code 2).

The layout of text files in the prompt is fixed, documented in the README, and rebuilt from the
history on ``-c``, so a continued conversation re-sends exactly the bytes of the first time::

    File: src/app.py
    ````python
    ...the file, fenced with more backticks than any run inside it...
    ````

    File: notes.md
    ```markdown
    ...
    ```

    the question

Directories expand to their text files in sorted order, leaving out binary files, VCS and
virtual-environment folders and what ``.gitignore`` files (at any depth) ignore; a total size
cap keeps a stray ``-f .`` from sending a whole disk, and what it left out is reported.

No Textual, no third-party imports: this is core, imported only when a command has attachments.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Text of all -f attachments together. Far above what a chat usually needs, far below what
# would make a request fail in confusing ways; a directory beyond it is cut, and said so.
MAX_TEXT_BYTES = 1024 * 1024
# OpenAI's documented per-image limit; most servers are stricter, none is more generous.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# How much of a file is looked at for NUL bytes to call it binary (git does the same).
_BINARY_SNIFF = 8192

SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".bzr", "_darcs", ".jj", ".venv", "venv", "__pycache__",
     "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox"}
)

LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".rs": "rust", ".go": "go", ".js": "javascript",
    ".mjs": "javascript", ".cjs": "javascript", ".ts": "typescript", ".tsx": "tsx",
    ".jsx": "jsx", ".java": "java", ".kt": "kotlin", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php",
    ".swift": "swift", ".sh": "bash", ".bash": "bash", ".zsh": "zsh", ".fish": "fish",
    ".ps1": "powershell", ".sql": "sql", ".html": "html", ".css": "css", ".scss": "scss",
    ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".xml": "xml",
    ".md": "markdown", ".rst": "rst", ".tex": "latex", ".lua": "lua", ".r": "r",
    ".scala": "scala", ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".clj": "clojure", ".dart": "dart", ".vue": "vue", ".diff": "diff",
    ".patch": "diff", ".ini": "ini", ".cfg": "ini", ".dockerfile": "dockerfile",
    ".tf": "hcl", ".nix": "nix", ".zig": "zig", ".txt": "text", ".csv": "csv",
}
_NAMED_LANGUAGES = {"Dockerfile": "dockerfile", "Makefile": "makefile", "CMakeLists.txt": "cmake"}

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


class AttachmentError(Exception):
    """An attachment cannot be used; ``message`` is one line naming the file."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file as sent: its name as the user sees it, its bytes and what kind it is.

    ``kind`` is ``"text"`` (UTF-8, laid out in the prompt) or ``"image"`` (sent as an image
    part). ``sha256`` is the key it is stored under, so the same file twice is one copy.
    """

    name: str
    kind: str
    mime: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class Gathered:
    """What ``-f``/``-a`` produced: attachments in order, and notices for stderr."""

    attachments: list[Attachment] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind == "text"]

    @property
    def images(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind == "image"]


# --- the prompt layout ---------------------------------------------------------------------


def language_of(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if base in _NAMED_LANGUAGES:
        return _NAMED_LANGUAGES[base]
    return LANGUAGES.get(os.path.splitext(base)[1].lower(), "")


def fence_for(text: str) -> str:
    """Backticks enough that no run inside ``text`` can close the block early (at least 3)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_file(name: str, text: str) -> str:
    fence = fence_for(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"File: {name}\n{fence}{language_of(name)}\n{body}{fence}"


def compose_with_files(question: str, files: Sequence[tuple[str, str]]) -> str:
    """Files first (a header with the path, fenced content), the question last."""
    if not files:
        return question
    blocks = [render_file(name, text) for name, text in files]
    return "\n\n".join([*blocks, question]) if question else "\n\n".join(blocks)


# --- images --------------------------------------------------------------------------------


def image_mime(data: bytes) -> str | None:
    """The image type from the first bytes (what the file is, whatever its name says)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_image(spec: str, limit: int = MAX_IMAGE_BYTES) -> Attachment:
    name, data = _read_bytes(spec, limit, "image")
    mime = image_mime(data)
    if mime is None:
        raise AttachmentError(
            f"{name} is not a PNG, JPEG, WebP or GIF image (the only kinds -a takes)"
        )
    return Attachment(name, "image", mime, data)


def _read_bytes(spec: str, limit: int, what: str) -> tuple[str, bytes]:
    if spec == "-":
        stream = sys.stdin
        if stream is None or stream.isatty():
            raise AttachmentError(f"{what} '-' means stdin, but nothing is piped into it")
        data = stream.buffer.read(limit + 1)
        name = "stdin"
    else:
        path = Path(spec).expanduser()
        name = spec
        try:
            if path.is_dir():
                raise AttachmentError(f"{spec} is a directory; -a takes image files")
            size = path.stat().st_size
            if size > limit:
                raise AttachmentError(_too_big(spec, size, limit, what))
            data = path.read_bytes()
        except FileNotFoundError:
            raise AttachmentError(f"no such file: {spec}") from None
        except OSError as exc:
            raise AttachmentError(f"cannot read {spec}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise AttachmentError(_too_big(name, len(data), limit, what))
    return name, data


def _too_big(name: str, size: int, limit: int, what: str) -> str:
    return (
        f"{name} is {_mb(size)}; an {what} may be at most {_mb(limit)}"
        if what == "image"
        else f"{name} is {_mb(size)}; attached files may be at most {_mb(limit)} in total"
    )


def _mb(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


# --- text files ----------------------------------------------------------------------------


def _decode_text(name: str, data: bytes) -> str:
    if b"\0" in data[:_BINARY_SNIFF]:
        raise AttachmentError(f"{name} is a binary file; -f takes text files (use -a for images)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AttachmentError(
            f"{name} is not UTF-8 text (invalid byte at offset {exc.start}); convert it first"
        ) from None


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:_BINARY_SNIFF]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def gather(
    files: Iterable[str] = (),
    images: Iterable[str] = (),
    *,
    text_limit: int = MAX_TEXT_BYTES,
    image_limit: int = MAX_IMAGE_BYTES,
) -> Gathered:
    """Read every ``-f`` and ``-a`` argument, in order, or raise :class:`AttachmentError`."""
    out = Gathered()
    budget = text_limit
    seen: set[str] = set()
    for spec in files:
        if spec != "-" and Path(spec).expanduser().is_dir():
            found, left_out, budget = _gather_dir(spec, budget)
            if not found and not left_out:
                raise AttachmentError(f"directory {spec} has no text files to attach")
            for item in found:
                if item.name not in seen:
                    seen.add(item.name)
                    out.attachments.append(item)
            if left_out:
                shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
                out.notices.append(
                    f"left out {len(left_out)} file(s) of {spec} over the {_mb(text_limit)} "
                    f"attachment cap: {shown}"
                )
            continue
        name, data = _read_bytes(spec, text_limit, "file")
        text = _decode_text(name, data)
        if len(data) > budget:
            raise AttachmentError(_too_big(name, len(data), text_limit, "file"))
        budget -= len(data)
        if name not in seen:
            seen.add(name)
            out.attachments.append(Attachment(name, "text", "text/plain", text.encode("utf-8")))
    for spec in images:
        out.attachments.append(read_image(spec, image_limit))
    return out


def _gather_dir(spec: str, budget: int) -> tuple[list[Attachment], list[str], int]:
    root = Path(spec).expanduser()
    found: list[Attachment] = []
    left_out: list[str] = []
    for path in walk_text_candidates(root):
        rel = path.relative_to(root).as_posix()
        name = f"{spec.rstrip('/')}/{rel}" if spec not in (".", "./") else rel
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_BINARY_SNIFF)
            if b"\0" in head:
                continue  # binary: never meant as text
            if size > budget:
                left_out.append(name)
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if not _is_text(data):
            continue  # not UTF-8: left out like a binary
        if len(data) > budget:
            left_out.append(name)
            continue
        budget -= len(data)
        found.append(Attachment(name, "text", "text/plain", data))
    return found, left_out, budget


def is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def walk_text_candidates(root: Path) -> list[Path]:
    """Files under ``root`` in sorted order, minus VCS/venv folders and gitignored paths."""
    results: list[Path] = []

    def visit(folder: Path, rules: GitIgnore) -> None:
        local = folder / ".gitignore"
        if local.is_file():
            rules = rules.with_file(local, folder.relative_to(root).as_posix())
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name in SKIPPED_DIRS or is_virtualenv(path) or rules.ignored(rel, True):
                    continue
                visit(path, rules)
            elif entry.is_file() and not rules.ignored(rel, False):
                results.append(path)

    visit(root, GitIgnore())
    return results


# --- .gitignore ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """A gitignore glob as a regex over a posix path: ``*`` and ``?`` stop at ``/``, ``**``
    spans folders, ``[...]`` is a character class."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                before_ok = i == 0 or pattern[i - 1] == "/"
                after = pattern[i + 2 : i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if before_ok and i + 2 == n:
                    out.append(".*")
                    i += 2
                    continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def parse_gitignore(text: str, base: str = "") -> list[_Rule]:
    """The rules of one ``.gitignore`` living in folder ``base`` (posix, relative to the root)."""
    rules: list[_Rule] = []
    prefix = f"{re.escape(base)}/" if base and base != "." else ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if raw.endswith("\\ "):
            line = raw[:-2] + " "
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated or line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = f"^{prefix}{body}$" if anchored else f"^{prefix}(?:.*/)?{body}$"
        rules.append(_Rule(re.compile(regex, re.DOTALL), negated, dir_only))
    return rules


@dataclass(frozen=True, slots=True)
class GitIgnore:
    """The rules in force in one folder: its own ``.gitignore`` after its parents' ones."""

    rules: tuple[_Rule, ...] = ()

    def with_file(self, path: Path, base: str) -> GitIgnore:
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            return self
        return GitIgnore((*self.rules, *parse_gitignore(text, base)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Last matching rule wins, as in git (a negation re-includes)."""
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel):
                verdict = not rule.negated
        return verdict


# --- @path in prompt text (the TUI) --------------------------------------------------------

_AT_PATH = re.compile(r"(?<!\S)@(\S+)")
_TRAILING = ",.;:!?)]}'\""


def split_at_paths(text: str, cwd: Path | None = None) -> tuple[str, list[str]]:
    """Find ``@path`` mentions of existing files or folders in a prompt.

    Returns the prompt with each such ``@path`` written as plain ``path`` (the reference stays
    readable; the file itself goes in as an attachment) and the paths in order, without
    duplicates. ``@`` words that name nothing on disk (``@alice``) are left as they are, and
    trailing punctuation (``see @notes.md,``) is not part of the path.
    """
    base = cwd or Path.cwd()
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        word = match.group(1)
        candidate = word
        while candidate and not (base / Path(candidate).expanduser()).exists():
            if candidate[-1] not in _TRAILING:
                return match.group(0)
            candidate = candidate[:-1]
        if not candidate:
            return match.group(0)
        if candidate not in found:
            found.append(candidate)
        return word

    return _AT_PATH.sub(replace, text), found


def classify(path: str) -> str:
    """``"image"`` for a file whose bytes say PNG/JPEG/WebP/GIF, else ``"text"`` (for -f)."""
    try:
        with Path(path).expanduser().open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return "text"
    return "image" if image_mime(head) else "text"


def read_paths(paths: Iterable[str]) -> Gathered:
    """Read paths the user picked (the TUI's dialog, ``@path``): images, by their bytes, as
    images (``-a``), everything else as files (``-f``), with the same checks as ``ask``."""
    files: list[str] = []
    images: list[str] = []
    for path in paths:
        (images if classify(path) == "image" else files).append(path)
    return gather(files, images)
