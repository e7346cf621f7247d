"""Finding passages: dense (FAISS), BM25, their fusion, reranking."""
