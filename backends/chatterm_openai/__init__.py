"""The OpenAI-compatible backend (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, transformers serve).

Registered as the ``openai`` entry point; importing it pulls in httpx and nothing heavier.
"""

import sys

# ``import httpx`` also imports httpx's own command-line client (click, rich, pygments), about
# half of its import time, only to offer ``httpx.main``, which chatterm never calls. A None in
# sys.modules makes that one optional import fail at once, and httpx falls back to a stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from chatterm_openai.backend import DEFAULT_BASE_URL, OpenAIBackend  # noqa: E402

__all__ = ["DEFAULT_BASE_URL", "OpenAIBackend"]
