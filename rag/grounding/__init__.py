"""The grounding stage: how far the passages back what an answer says. Sentence support and
contradiction (``support``, with the trained claim ``verifier``), the citation check
(``citations``) and the answerability gate (``answerability``). May import ``rag.bundled`` and
``rag.core``; generation imports it, never the other way round."""
