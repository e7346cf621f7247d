"""The retrieval stage: dense and BM25 retrievers over a knowledge base's indexes and their rank
fusion (``retrievers``). May import ``rag.storage``, ``rag.embedding`` and ``rag.core``."""
