"""The OpenAI-compatible backend (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, transformers serve).

Registered as the ``openai`` entry point; importing it pulls in httpx and nothing heavier.
"""

from chatterm_openai.backend import DEFAULT_BASE_URL, OpenAIBackend

__all__ = ["DEFAULT_BASE_URL", "OpenAIBackend"]
