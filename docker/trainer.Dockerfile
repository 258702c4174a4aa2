# One image per trainer: docker build -f docker/trainer.Dockerfile --build-arg FRAMEWORK=timm -t vtp-timm .
# FRAMEWORK is ultralytics | timm | huggingface: the image installs vtp's base dependencies and that
# framework's dependency group only (pyproject.toml; one uv.lock), torch included — from the lock, the
# one place torch comes from (PyPI's Linux wheels bring their CUDA libraries as nvidia-* packages).
# TRACKING=1 adds the experiment trackers (ClearML, MLflow). The image runs `prefect flow-run execute`
# (the Kubernetes worker's command) with the code at /opt/vtp, where prefect.yaml's pull step expects it.
FROM python:3.11.11-slim-bookworm

ARG FRAMEWORK=ultralytics
ARG TRACKING=0
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

# OpenCV (ultralytics) needs these shared libraries even headless.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1=1.6.* libglib2.0-0=2.74.* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vtp
# Dependencies first (cached while only code changes), exactly as locked: base + one framework.
COPY pyproject.toml uv.lock README.md ./
RUN if [ "$TRACKING" = "1" ]; then set -- --group tracking; fi \
    && uv sync --frozen --no-default-groups --group "${FRAMEWORK}" "$@" --no-install-project
# All of vtp's code is small; only this framework's libraries are installed, so the other plugins
# are not installed frameworks here (core/frameworks.py reads their capabilities' `requires`).
COPY core ./core
COPY cli ./cli
COPY flows ./flows
COPY tasks ./tasks
COPY trainers ./trainers
COPY chat ./chat
COPY api ./api
COPY ui ./ui
COPY prefect.yaml ./
RUN if [ "$TRACKING" = "1" ]; then set -- --group tracking; fi \
    && uv sync --frozen --no-default-groups --group "${FRAMEWORK}" "$@" \
    && groupadd --system --gid 10001 vtp \
    && useradd --system --uid 10001 --gid vtp --home-dir /tmp/vtp --shell /usr/sbin/nologin vtp

USER 10001:10001
CMD ["prefect", "flow-run", "execute"]
