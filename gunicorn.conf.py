"""The production server: ``gunicorn --config gunicorn.conf.py`` (no other arguments).

aiohttp's uvloop worker (``usersvc.production.Worker``: malformed requests answered as
envelopes too) runs ``usersvc.production:app`` in each worker. Environment:
USERSVC_HOST / USERSVC_PORT (bind, default 0.0.0.0:8000), WEB_CONCURRENCY (workers),
USERSVC_DATABASE_URL (required: gunicorn never starts an embedded database, and never
migrates: run ``usersvc migrate`` once before), plus every USERSVC_* and OTEL_*
variable the service reads. Metrics of all workers are summed through the files of
PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless given; emptied at start).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

wsgi_app = "usersvc.production:app"
worker_class = "usersvc.production.Worker"
bind = f"{os.environ.get('USERSVC_HOST', '0.0.0.0')}:{os.environ.get('USERSVC_PORT', '8000')}"  # noqa: S104

# 2 x cores + 1, but at most 4: each worker holds up to 11 PostgreSQL connections
# (its pool of 10 and its relay's), and replicas add up against max_connections.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * (os.cpu_count() or 1) + 1, 4))
# A worker is replaced after this many requests (the jitter keeps them from all
# restarting at once); counters survive it: a dead worker's files stay in the sum.
max_requests = 20_000
max_requests_jitter = 2_000
# SIGTERM (to the master, or to every process): each worker serves USERSVC_DRAIN_SECONDS
# more (5 in the image), answers its requests (at most 10 s) and lets its relay confirm
# what it sent (well under a second while the broker answers); the master SIGKILLs the
# workers still running after this many seconds.
graceful_timeout = 30
timeout = 30
keepalive = 5
logger_class = "usersvc.production.GunicornLogger"
accesslog = None  # the app writes its own access line, as JSON
# gunicorn's runtime control socket lives in a shared path of the home directory:
# two servers on one host (or one in a test) would fight over it; signals suffice.
control_socket_disable = True

# Set before any worker imports prometheus-client (it reads the variable at import).
metrics_dir = Path(
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="usersvc-metrics-"))
)


def on_starting(server: object) -> None:
    if not os.environ.get("USERSVC_DATABASE_URL"):
        sys.exit("USERSVC_DATABASE_URL is not set: gunicorn needs a real PostgreSQL")
    # A previous run's files would be summed in: start from nothing.
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for path in metrics_dir.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def child_exit(server: object, worker: object) -> None:
    """A dead worker's live gauges (in flight, pool, leader) leave the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(metrics_dir))  # type: ignore[attr-defined]
