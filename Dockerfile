# The usersvc image: `docker build -t usersvc .`
#
# Two stages. The build stage resolves the locked dependencies with uv (production group only:
# no pytest, no embedded PostgreSQL) into /app/.venv, compiled to bytecode; the runtime stage
# gets only that environment and the code and data the service reads at run time: usersvc/,
# sql/, migrations/ and the gunicorn configuration. It runs as an unprivileged user.
#
# Checked without a Docker engine by hadolint (.ci/run and pre-commit), and by
# tests/deploy/ which run this file's CMD and HEALTHCHECK commands against a real database.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.13.9-slim-trixie AS build
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode compiled at build time, so no worker pays for it at start; copy mode because the
# cache is a mount that does not reach the final image; the image's interpreter, never a
# downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.13 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY usersvc ./usersvc
# The project itself, editable: the package finds sql/ and migrations/ beside usersvc/ in /app.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
    && python -m compileall -q usersvc

FROM python:3.13.9-slim-trixie AS runtime
RUN groupadd --system --gid 10001 usersvc \
    && useradd --system --uid 10001 --gid usersvc --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin usersvc
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/usersvc /app/usersvc
COPY sql /app/sql
COPY migrations /app/migrations
COPY gunicorn.conf.py /app/gunicorn.conf.py
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    USERSVC_HOST=0.0.0.0 \
    USERSVC_PORT=8000 \
    USERSVC_LOG_FORMAT=json \
    USERSVC_DRAIN_SECONDS=5
USER 10001:10001
EXPOSE 8000
# gunicorn stops gracefully on SIGTERM (docs/operations.md, "Probes and shutdown"): /readyz
# answers 503 at once, the workers serve USERSVC_DRAIN_SECONDS more (load balancers stop
# sending meanwhile), then stop accepting, answer every request received and let the relay
# confirm what it sent. Give it longer than its graceful timeout (30 s) before SIGKILL
# (`docker stop -t` / compose's stop_grace_period).
STOPSIGNAL SIGTERM
# The readiness probe: 200 while the database answers, every migration is applied and the
# service is not stopping, else 503 (urlopen raises). The image has Python, so no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('USERSVC_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
