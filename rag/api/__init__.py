"""The HTTP API face (`rag serve`, docs/api.md): OpenAI-compatible chat with citations, search and
knowledge-base management, each request checked against the caller's key (rag.keys).

It imports the service (``rag.engine``, ``rag.pipeline``) and core modules, never the CLI or the
app; ``access`` holds who may do what and how much, ``openai_format`` the wire shapes of chat
answers, ``app`` the routes."""
