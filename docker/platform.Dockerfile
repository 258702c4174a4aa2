# The api / ui / worker side: docker build -f docker/platform.Dockerfile -t vtp-platform .
# Runs `vtp api` by default; compose runs the UI and the workers from the same image. It installs the
# base dependencies, the platform group (API, web app, LLM client, Kubernetes worker) and the groups
# of PREDICT_FRAMEWORKS: the Models tab and POST /api/runs/{id}/predict run a trained model in the API
# process, so they need its framework (set PREDICT_FRAMEWORKS="" for an API that does not predict).
# No trackers, no test tools.
FROM python:3.11.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.5.11 /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VTP_PROJECT_DIR=/opt/vtp \
    VTP_HOME=/var/lib/vtp \
    VTP_API_HOST=0.0.0.0 \
    DO_NOT_TRACK=1

ARG PREDICT_FRAMEWORKS="ultralytics timm huggingface"

# OpenCV (dataset import, ultralytics) needs these shared libraries even headless.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1=1.6.* libglib2.0-0=2.74.* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vtp
COPY pyproject.toml uv.lock README.md ./
RUN set -- --group platform; for g in $PREDICT_FRAMEWORKS; do set -- "$@" --group "$g"; done \
    && uv sync --frozen --no-default-groups "$@" --no-install-project
COPY core ./core
COPY cli ./cli
COPY flows ./flows
COPY tasks ./tasks
COPY trainers ./trainers
COPY chat ./chat
COPY api ./api
COPY ui ./ui
COPY prefect.yaml ./
COPY deploy ./deploy
RUN set -- --group platform; for g in $PREDICT_FRAMEWORKS; do set -- "$@" --group "$g"; done \
    && uv sync --frozen --no-default-groups "$@" \
    && groupadd --system --gid 10001 vtp \
    && useradd --system --uid 10001 --gid vtp --home-dir /var/lib/vtp --shell /usr/sbin/nologin vtp \
    && mkdir -p /var/lib/vtp && chown vtp:vtp /var/lib/vtp

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"]
CMD ["vtp", "api"]
