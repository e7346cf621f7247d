"""The core every layer stands on: the typed values passed between stages (``types``), every
stage's protocol (``protocols``), the user-facing errors (``errors``), the one validated settings
object (``config``), sentence splitting (``text``), and the machine facts, folders, child
processes and credential masking they need. Imports nothing else of rag's."""
