"""Django model fields whose values an LLM writes."""

__version__ = "0.1.0"
