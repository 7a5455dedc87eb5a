"""The in-process transformers backend (``chatterm --backend local``).

Importing this package is cheap and never imports torch or transformers: they are imported when a
model is first loaded. Install them with ``pip install 'chatterm[local]'``.
"""

from chatterm_local.backend import LOCAL_OPTIONS, LocalBackend
from chatterm_local.loader import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL", "LOCAL_OPTIONS", "LocalBackend"]
