"""The generation stage: writing cited answers. LLM engines over vLLM, embedded or served
(``engines``, ``models``, the shared server process in ``server``), token-budgeted prompts
(``prompting``), follow-up questions (``conversation``) and the answerer that ties them to the
grounding checks (``answering``). May import ``rag.grounding``, ``rag.bundled`` and ``rag.core``."""
