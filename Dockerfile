# packshot GPU worker: one resident GPU task worker per card (the models stay loaded across flow runs)
# plus the Prefect process worker that picks up flow runs (scripts/gpu-entrypoint.sh starts both).
# torch's CUDA wheels bring their own CUDA runtime; the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit. Build and run (README, "Running in production"):
#   docker build -t packshot-gpu .
#   docker run --gpus all -v packshot-models:/models -v /var/lock/packshot-gpu:/tmp/packshot-gpu-locks \
#     -e PREFECT_API_URL=http://HOST:4200/api \
#     -e PACKSHOT_GENERATIVE__FLUX_MODEL=black-forest-labs/FLUX.1-Fill-dev packshot-gpu
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    PACKSHOT_BRAND_STYLES_DIR=/app/brand_styles \
    PACKSHOT_ORCHESTRATION__GPU_LOCK_DIR=/tmp/packshot-gpu-locks \
    PACKSHOT_ORCHESTRATION__GPU_WORKERS=served \
    CC=gcc \
    PREFECT_LOCAL_STORAGE_PATH=/results \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

# Debian's security updates move these package versions; the base image tag pins the release.
# gcc and libc6-dev: Triton (torch.compile's GPU kernels) builds a small C launcher with the system C
# compiler at the first compiled call; without one every compiled fill fails. The base image has the
# Python headers it also needs.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libgl1 libglib2.0-0 tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first (cached layer), pinned by the constraints file; then the code.
COPY pyproject.toml README.md ./
COPY constraints/gpu.txt constraints/gpu.txt
COPY packshot ./packshot
COPY stages ./stages
COPY orchestrator ./orchestrator
COPY flows ./flows
COPY cli ./cli
COPY scripts/gpu-entrypoint.sh ./scripts/gpu-entrypoint.sh
COPY brand_styles ./brand_styles
COPY prefect.yaml ./
RUN pip install --no-cache-dir --constraint constraints/gpu.txt ".[gpu,video]"

# A fixed numeric UID/GID, so volume permissions work on any host and Kubernetes can check runAsNonRoot.
RUN groupadd --gid 10001 packshot \
    && useradd --uid 10001 --gid 10001 --create-home packshot \
    && mkdir -p /models /results /tmp/packshot-gpu-locks \
    && chown 10001:10001 /models /results /tmp/packshot-gpu-locks
USER 10001:10001
# /results: Prefect result storage the flows and the GPU task workers share (mount one volume into every
# container of a host); /tmp/packshot-gpu-locks: the card locks (mount one host folder into every
# container that may be given the same card).
VOLUME ["/models", "/results"]

# The worker's own health endpoint (prefect worker start --with-healthcheck) on port 8080.
EXPOSE 8080
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=5)"]

ENTRYPOINT ["tini", "--", "/app/scripts/gpu-entrypoint.sh"]
CMD ["prefect", "worker", "start", "--pool", "gpu-pool", "--type", "process", "--with-healthcheck"]
