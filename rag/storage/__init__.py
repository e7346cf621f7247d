"""Storage: knowledge bases on disk. The SQLite chunk store (``store``), the vector and text index
backends (``faiss_index``, ``bm25_index``, ``milvus_index``), published snapshots (``kb``,
``snapshot_build``), API keys (``keys``) and answer feedback (``feedback``). May import only
``rag.core``."""
