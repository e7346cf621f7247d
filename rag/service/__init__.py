"""The service: the one place that composes the stages. ``pipeline`` answers and searches one
knowledge base; ``engine`` holds what every client of one server shares (models, pipelines,
indexing ``jobs``, feedback); ``ask_worker`` keeps retrieval loaded between CLI calls;
``uploads`` and ``exposure`` are the checks every face applies. The faces (``rag.cli``,
``rag.api``, ``ui``) and ``eval`` call this; it imports the stages and the core, never a face."""
