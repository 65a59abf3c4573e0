# Embedscope dashboard for a shared server, on CPU: the default image. The same install steps as the
# Makefile (`make install`). The GPU image is Dockerfile.gpu.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_DISABLE_TELEMETRY=1
RUN apt-get update && apt-get install -y --no-install-recommends make curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 embedscope
WORKDIR /app
COPY --chown=embedscope:embedscope . /app
USER embedscope

# The CPU build of torch: pass PyTorch's CPU wheel index as TORCH_INDEX_URL at build time (the default
# index serves a multi-GB CUDA build). Then the Makefile's own install (constraints.txt's torch pin,
# package, demo model).
ARG TORCH_INDEX_URL=""
RUN python -m venv .venv \
    && if [ -n "$TORCH_INDEX_URL" ]; then .venv/bin/pip install -c constraints.txt torch --index-url "$TORCH_INDEX_URL"; fi \
    && make install

# Shared use: set a password and keep hub downloads off unless wanted.
#   docker run -p 8501:8501 -e EMBEDSCOPE_PASSWORD=... -e EMBEDSCOPE_NO_HUB=1 embedscope
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1
CMD [".venv/bin/python", "-m", "dashboard", "--server.port=8501", "--server.address=0.0.0.0"]
