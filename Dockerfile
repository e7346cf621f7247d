# The rag application (UI, CLI, batch jobs); generation goes to the vLLM service.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY eval ./eval
COPY ui ./ui
# The scale extra (Ray, Milvus client) makes this image also the Ray head/worker image: Ray
# tasks import rag, and client and cluster must run the same Ray version.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[ui,scale]" openai
# An unprivileged user owns the data folders (docker-compose mounts volumes there).
RUN useradd --create-home --uid 1000 rag && mkdir -p /data/rag /data/hf && chown -R rag:rag /data
USER rag
EXPOSE 8501
CMD ["rag", "--help"]
