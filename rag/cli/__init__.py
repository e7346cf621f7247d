"""The command-line face: `rag` (``main``) with one module per command, named for it. Commands
parse, call the service or an evaluator, and render; errors reach the user as one line
(``main.Group``). The top layer: nothing imports it."""
