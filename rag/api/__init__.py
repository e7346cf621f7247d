"""The HTTP API face (`rag serve`, docs/api.md): OpenAI-compatible chat with citations, search and
knowledge-base management, each request checked against the caller's key (rag.storage.keys).

Owns the routes (``app``), who may do what and how much (``access``) and the wire shapes of chat
answers (``openai_format``). May import the service (``rag.service``) and everything below it;
never the CLI or the app."""
