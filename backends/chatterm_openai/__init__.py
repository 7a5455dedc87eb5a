"""The OpenAI-compatible backend."""
