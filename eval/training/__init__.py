"""Training the encoders rag ships beside its embedder: a cross-encoder reranker (query,
passage -> relevance) and a claim verifier (evidence sentence, claim -> supports, contradicts,
neither), their training data, and their model cards. ``rag train`` is the face; the models run
in rag/reranking/cross_encoder.py and rag/grounding/verifier.py."""
