"""The ingestion stage: files to chunks in a knowledge base. ``loaders`` detects a file's type
from its content and hands it to a loader per format (``pdf``, ``images``, ``markup``,
``office``, with ``text`` cleaning and ``ocr``); ``parsing`` runs them in a child process;
``chunking`` cuts documents at sentence boundaries with the embedder's tokenizer; ``indexer``
(with its ``runners``) indexes incrementally and crash-safely; ``page_images`` draws a cited
page for the app. May import ``rag.storage``, ``rag.embedding`` and ``rag.core``, never the
service or a face."""
