# One image per trainer: docker build -f docker/trainer.Dockerfile --build-arg FRAMEWORK=timm -t vtp-timm .
# FRAMEWORK is ultralytics | timm | huggingface; the image runs `prefect flow-run execute` (the
# Kubernetes worker's command) with the code at /opt/vtp, where prefect.yaml's pull step expects it.
# CUDA-capable PyTorch base, pinned by tag (pin by digest in production: @sha256:...).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ARG FRAMEWORK=ultralytics
# uv from its own image, pinned.
COPY --from=ghcr.io/astral-sh/uv:0.5.11 /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VTP_PROJECT_DIR=/opt/vtp \
    VTP_HOME=/tmp/vtp \
    VTP_FRAMEWORK=${FRAMEWORK} \
    YOLO_OFFLINE=1 \
    DO_NOT_TRACK=1

WORKDIR /opt/vtp
# Dependencies first (cached while only code changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY core ./core
COPY cli ./cli
COPY flows ./flows
COPY tasks ./tasks
COPY trainers ./trainers
COPY chat ./chat
COPY api ./api
COPY ui ./ui
COPY prefect.yaml ./
RUN uv sync --frozen --no-dev \
    && groupadd --system --gid 10001 vtp \
    && useradd --system --uid 10001 --gid vtp --home-dir /tmp/vtp --shell /usr/sbin/nologin vtp

USER 10001:10001
CMD ["prefect", "flow-run", "execute"]
