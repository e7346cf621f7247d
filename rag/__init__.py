"""rag: self-hosted retrieval-augmented generation with cited answers."""

__version__ = "0.1.0"
