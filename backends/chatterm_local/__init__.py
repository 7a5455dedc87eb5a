"""The in-process transformers backend."""
