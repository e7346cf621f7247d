"""Writing cited answers: LLM engines, prompts, citation checking and support scoring."""
