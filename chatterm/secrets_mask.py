"""Keeping secrets out of what chatterm shows: API keys and passwords in URLs.

Every message that can reach a user (errors, notices, ``config show``) and may contain text a
server sent back or a URL the user typed passes through :func:`mask_secrets` *before* it is cut
to length: masking a cut message could leave most of a key visible (19 of 21 characters of a
key echoed near the cut). A key can appear in many forms in a server's message, so each is
masked: as is, quoted, as its ``repr``, JSON-escaped, URL-encoded, and any credential after
``Bearer``/``Basic`` whatever it is. URL user info (``http://user:secret@host``) becomes
``http://***@host``.

This module also holds the two rules about keys that decide what is *sent*:
:func:`key_problem` (a key with whitespace or control characters is refused before any
request, a trailing newline from a copied file being the usual cause) and
:func:`is_openai_host` (the default ``OPENAI_API_KEY`` goes to a profile's own server only when
that server is OpenAI itself, by parsed host, never by substring).

Core module: no third-party imports.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"

# "Bearer <token>" / "Basic <token>": whatever credential follows is masked. A token is 8+
# characters with a digit or punctuation in it, so "Basic authentication required" survives.
_AUTH_SCHEME = re.compile(
    r"(?i)\b(bearer|basic)(\s+|%20|\+)(?=[^\s\"',;)\]}]*[0-9._~+/=-])([^\s\"',;)\]}]{8,})"
)
# scheme://user[:password]@host -> scheme://***@host (the user name can be a key too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s\"'<>]+)@")
# Shorter strings are not treated as secrets: masking "a" would mangle every message.
_MIN_SECRET = 4


def secret_forms(secret: str) -> list[str]:
    """Every spelling of ``secret`` a message might contain, longest first."""
    forms = {
        secret,
        secret.strip(),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        unquote(secret),
    }
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


def url_secrets(url: str | None) -> list[str]:
    """The user name and password in ``url``'s user info, and their Basic-auth token."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    found = [s for s in (user, password) if s]
    if user or password:
        pair = f"{unquote(user or '')}:{unquote(password or '')}"
        found.append(base64.b64encode(pair.encode()).decode())
    return found


def mask_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every form of every secret, credentials after Bearer/Basic and URL user
    info replaced by ``***``. Call it on the whole message, before any truncation."""
    forms: list[str] = []
    for secret in secrets:
        if secret:
            forms.extend(secret_forms(secret))
    for form in sorted(set(forms), key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def display_url(url: str) -> str:
    """``url`` as shown to a user: any ``user:password@`` part replaced by ``***@``."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be sent in an HTTP header, or None when it can.

    A key is printable ASCII without spaces. Anything else (most often a trailing ``\\r`` or
    ``\\n`` from a copied file) is refused before a request is made; the reason never quotes
    the key.
    """
    if not key:
        return "is empty"
    if key != key.strip():
        return "has leading or trailing whitespace (a newline from a copied file?)"
    if any(ch.isspace() for ch in key):
        return "contains whitespace"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in key):
        return "contains control characters"
    if not key.isascii():
        return "contains non-ASCII characters"
    return None


def is_openai_host(base_url: str | None) -> bool:
    """True when ``base_url`` is OpenAI's own API over https: host exactly ``api.openai.com``.

    Parsed, not matched as a substring: ``https://api.openai.com.evil.net/v1`` and
    ``https://api.openai.com@evil.net/v1`` are other hosts, and plain http would send the key
    in clear.
    """
    if not base_url:
        return False
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme.lower() == "https"
        and parts.hostname == "api.openai.com"
        and parts.username is None
        and parts.password is None
        and port in (None, 443)
    )
