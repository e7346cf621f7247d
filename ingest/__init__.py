"""Loading, chunking and incremental batch indexing of user documents."""
