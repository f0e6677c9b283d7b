# ruff: noqa: S310, S603 - a benchmark: it starts its own processes and calls its own URLs
"""What telemetry costs: req/s of one ``usersvc serve`` process under ``wrk`` (not a test).

    uv run python benchmarks/telemetry.py [--seconds 10] [--rounds 2] [--port 18150]

Three configurations of the same server, measured side by side, in turns (so the
machine's other load falls on all of them alike), each with ``wrk -t1 -c32``:

- off:     OTEL_SDK_DISABLED=true and USERSVC_LOG_LEVEL=WARNING (no access lines);
           the Prometheus counters still count (they cannot be switched off).
- default: no OTLP endpoint (trace ids in the logs, nothing recorded), JSON access log.
- full:    every span recorded and exported over OTLP/HTTP to a receiver on this
           machine (a small aiohttp server that decodes nothing), JSON access log.

Endpoints: GET /api/v1/users/{id} (a user made before) and POST create_user (a new
user each time). The relay is off (--no-relay): this measures the request path. Logs go
to a file. Makes its own database (dropped after).

Environment: USERSVC_TEST_DATABASE_URL (an admin URL, as the tests use).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from uuid import uuid4

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.http_load import UNTHROTTLED

ADMIN_URL = os.environ.get(
    "USERSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CREATE_LUA = r"""
local n = 0
local run = "%s"
request = function()
  n = n + 1
  local body = string.format(
    '{"phone": %%d, "email": "b%%s-%%d@example.com", "firstname": "Ivan", ' ..
    '"lastname": "Petrov", "middlename": null}', %d + n, run, n)
  return wrk.format("POST", "/api/v1/users/create_user",
    {["Content-Type"] = "application/json"}, body)
end
"""
RECEIVER = """
import sys
from aiohttp import web

async def export(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")

app = web.Application()
app.router.add_post("/v1/traces", export)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
CONFIGS = {
    "off": {"OTEL_SDK_DISABLED": "true", "USERSVC_LOG_LEVEL": "WARNING"},
    "default": {},
    "full": {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
}


def _wait(url: str, method: str = "POST") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def _wrk(seconds: int, url: str, script: Path | None = None) -> float:
    command = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"errors under load:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18150)
    args = parser.parse_args()
    database = f"usersvc_bench_telemetry_{uuid4().hex[:8]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    database_url = f"{base}/{database}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    work = Path(tempfile.mkdtemp(prefix="usersvc-bench-"))
    receiver_port, port = args.port + 1, args.port
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port)])
    results: dict[tuple[str, str], list[float]] = {}
    try:
        subprocess.run(
            [sys.executable, "-m", "usersvc", "migrate"],
            env=os.environ | {"USERSVC_DATABASE_URL": database_url},
            check=True,
            capture_output=True,
        )
        for round_ in range(args.rounds):
            for name, extra in CONFIGS.items():
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                env |= {"USERSVC_DATABASE_URL": database_url, "USERSVC_LOG_FORMAT": "json"}
                env |= UNTHROTTLED
                if name == "full":
                    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{receiver_port}"
                env |= extra
                with (work / f"{name}-{round_}.log").open("w") as log:
                    server = subprocess.Popen(
                        [sys.executable, "-m", "usersvc", "serve", "--no-relay",
                         "--host", "127.0.0.1", "--port", str(port)],
                        env=env, stdout=log, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                try:
                    url = f"http://127.0.0.1:{port}/api/v1"
                    _wait(f"{url}/healthcheck")
                    phone = 70000000000 + (round_ * 3 + list(CONFIGS).index(name)) * 10**8
                    body = json.dumps({
                        "phone": phone, "email": f"{uuid4().hex}@example.com",
                        "firstname": "Ivan", "lastname": "Petrov", "middlename": None,
                    }).encode()  # fmt: skip
                    request = urllib.request.Request(
                        f"{url}/users/create_user", data=body, method="POST"
                    )
                    user_id = json.load(urllib.request.urlopen(request))["result"]
                    script = work / f"create-{name}-{round_}.lua"
                    script.write_text(CREATE_LUA % (uuid4().hex[:8], phone))
                    get = _wrk(args.seconds, f"{url}/users/{user_id}")
                    create = _wrk(args.seconds, f"{url}/users/create_user", script)
                    results.setdefault((name, "GET"), []).append(get)
                    results.setdefault((name, "create_user"), []).append(create)
                    print(f"round {round_ + 1} {name:8} GET {get:8.0f}  create_user {create:8.0f}")
                finally:
                    server.terminate()
                    server.wait(30)
    finally:
        receiver.terminate()
        receiver.wait(10)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"\nreq/s, wrk -t1 -c32, {args.seconds} s per run, best of {args.rounds} (all runs):")
    for endpoint in ("GET", "create_user"):
        cells = []
        for name in CONFIGS:
            runs = results[name, endpoint]
            cells.append(f"{name} {max(runs):6.0f} ({', '.join(f'{r:.0f}' for r in runs)})")
        print(f"  {endpoint:12} " + " | ".join(cells))


if __name__ == "__main__":
    main()
