"""rag: self-hosted retrieval-augmented generation with cited, checked answers.

Owns the engine and its faces, in layers that import only downwards (pyproject.toml's
import-linter contract): the faces ``cli`` and ``api`` (the app is ``ui/``), the ``service``
that composes the stages, the stages ``retrieval``, ``reranking``, ``generation``,
``grounding``, ``embedding`` and ``storage`` (ingestion is ``ingest/``), the shipped encoders in
``bundled``, and the ``core`` (types, protocols, errors, config) every layer stands on.
"""

__version__ = "0.1.0"
