"""Shell completion values: profile names, backend names, conversation ids.

typer calls these only when the shell asks for completions (``_CHATTERM_COMPLETE`` set), so
everything they need is imported inside them: defining the options that point here costs
``--help`` and ``ask`` nothing. They never fail loudly: a broken config or a missing history
just completes nothing, because an error printed into a shell's completion would garble the
prompt line.

Titles read from the history are untrusted and shown by some shells (zsh, fish) next to the id,
so they pass through :func:`chatterm.sanitize.safe_inline`.
"""

from __future__ import annotations

# Enough ids to pick from; a prefix narrows them further.
MAX_CONVERSATIONS = 50


def complete_profile(incomplete: str) -> list[tuple[str, str]]:
    """Profile names from the config file, with their backend and model as the description."""
    try:
        from chatterm.config import load_config
        from chatterm.sanitize import safe_inline

        config = load_config()
    except Exception:
        return []
    found = []
    for name in sorted(config.profiles):
        if name.startswith(incomplete):
            profile = config.profiles[name]
            about = " ".join(x for x in (profile.backend, profile.model) if x) or "profile"
            found.append((safe_inline(name), safe_inline(about)))
    return found


def complete_backend(incomplete: str) -> list[str]:
    """Installed backends, read from entry-point metadata (no backend is imported)."""
    try:
        from chatterm.plugins import available_backends

        return [name for name in available_backends() if name.startswith(incomplete)]
    except Exception:
        return []


def complete_conversation(incomplete: str) -> list[tuple[str, str]]:
    """Recent conversation ids matching the typed prefix, each with its title.

    The history is opened read-only and never created: completing must not write anything.
    """
    try:
        import sqlite3

        from chatterm.paths import history_path
        from chatterm.sanitize import safe_inline

        path = history_path()
        if not path.exists():
            return []
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute(
                "SELECT id, title FROM conversations WHERE id LIKE ? ESCAPE '\\' "
                "ORDER BY updated_at DESC LIMIT ?",
                (_like_prefix(incomplete), MAX_CONVERSATIONS),
            ).fetchall()
        finally:
            db.close()
    except Exception:
        return []
    return [(safe_inline(str(cid)), safe_inline(str(title))) for cid, title in rows]


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
