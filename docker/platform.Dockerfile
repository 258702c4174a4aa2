# The api / ui / worker side (no CUDA): docker build -f docker/platform.Dockerfile -t vtp-platform .
# Runs `vtp api` by default; compose runs the UI and the workers from the same image.
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

WORKDIR /opt/vtp
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
COPY deploy ./deploy
RUN uv sync --frozen --no-dev \
    && groupadd --system --gid 10001 vtp \
    && useradd --system --uid 10001 --gid vtp --home-dir /var/lib/vtp --shell /usr/sbin/nologin vtp \
    && mkdir -p /var/lib/vtp && chown vtp:vtp /var/lib/vtp

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"]
CMD ["vtp", "api"]
