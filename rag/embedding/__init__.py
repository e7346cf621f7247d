"""The embedding stage: texts to vectors with a sentence-transformers model (``embedder``), the
int8 ONNX Runtime path for CPUs without native bf16 (``onnx_int8``) and the models installed from
PyPI parts on request (``installed_models``). May import only ``rag.core``."""
