"""Offline evaluation and training: retrieval measures (``retrieval``), answer runs with
intervals and reports (``runs``, ``answers``, ``citation_metrics``, ``intervals``, ``compare``),
the support function and the gate (``support``, ``scifact``), the evaluators ``rag eval`` calls
(``evaluators``), and the encoders' training (``training``). Stands beside the faces: it may
import the service and everything below it, and nothing imports it but the CLI."""
