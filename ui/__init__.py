"""The Streamlit app face (`rag ui`): ``app`` (sign-in, sidebar, feedback view) with its
``chat`` and ``documents`` views, ``render`` (escaped HTML for answers and passages), ``auth``
(who may use it) and ``launcher`` (the LLM server and Streamlit, supervised). It calls the
service (``rag.service``) and renders; it never imports the CLI or the HTTP API."""
