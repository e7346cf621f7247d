"""Knowledge bases on disk: the SQLite store and the published FAISS/BM25 snapshots."""
