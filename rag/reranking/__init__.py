"""The reranking stage: a cross-encoder reorders retrieval's candidates (``cross_encoder``).
May import ``rag.bundled`` (the shipped weights) and ``rag.core``."""
