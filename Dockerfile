# packshot GPU worker: a Prefect worker that runs packshot flows on an NVIDIA GPU.
# torch's CUDA wheels bring their own CUDA libraries; the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit. Run with:  docker run --gpus all -v packshot-models:/models ...
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/models/huggingface \
    PACKSHOT_BRAND_STYLES_DIR=/app/brand_styles \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY packshot ./packshot
COPY stages ./stages
COPY flows ./flows
COPY brand_styles ./brand_styles

# PyPI's torch 2.13.0 for Linux x86-64 is the CUDA build; the gpu extra adds torchvision and torchao.
RUN pip install "torch==2.13.0" \
    && pip install ".[gpu]"

RUN useradd --create-home --uid 1000 packshot && mkdir -p /models && chown packshot /models
USER packshot
VOLUME ["/models"]

ENTRYPOINT ["tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "gpu-pool", "--type", "process"]
