"""Emulator throughput: requests/second from concurrent keep-alive clients.

The emulator runs as a subprocess (``pkgrepo emulator serve --quiet``: its own interpreter and
GIL, as in the demo); client processes, each with a few threads holding one keep-alive
``http.client`` connection apiece, drive a planning-and-applying mix for a few seconds:
``secrets/list`` (45 %), ``acls/list`` (35 %), ``put`` (20 %) over several workspaces.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

TARGET_RPS = 2000
DURATION_S = 5.0
PROCESSES = 3
THREADS_PER_PROCESS = 4
WORKSPACES = ("bench-a", "bench-b", "bench-c", "bench-d")
SCOPE = "databricks-package-management"
TOKEN = "dapi-emulator-admin"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@dataclass
class Result:
    requests: int
    errors: int
    latencies_ms: list[float]


@dataclass
class Measurement:
    label: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


def run() -> str:
    with tempfile.TemporaryDirectory() as folder:
        runs = [
            _measure("in memory", []),
            _measure(
                "`--state FILE` (atomic save after every put)", ["--state", f"{folder}/s.json"]
            ),
        ]
    connections = PROCESSES * THREADS_PER_PROCESS
    lines = [
        "## Emulator throughput",
        "",
        f"`pkgrepo emulator serve --quiet` in its own process (own GIL); {PROCESSES} client "
        f"processes x {THREADS_PER_PROCESS} threads = {connections} keep-alive `http.client` "
        f"connections for {DURATION_S:.0f} s over {len(WORKSPACES)} workspaces; mix: "
        "secrets/list 45 %, acls/list 35 %, put 20 %. Target: at least "
        f"{TARGET_RPS:,} requests/s.",
        "",
        "| emulator | requests | not 200 | requests/s | p50 | p99 | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in runs:
        verdict = "met" if m.rps >= TARGET_RPS else "**missed**"
        lines.append(
            f"| {m.label} | {m.requests} | {m.errors} | {m.rps:,.0f} | {m.p50_ms:.2f} ms "
            f"| {m.p99_ms:.2f} ms | {verdict} |"
        )
    return "\n".join(lines)


def _measure(label: str, extra_args: list[str]) -> Measurement:
    server, port = _start_server(extra_args)
    try:
        _seed(port)
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            parts = pool.starmap(_client_process, [(port, i, DURATION_S) for i in range(PROCESSES)])
    finally:
        server.terminate()
        server.wait(timeout=10)
    latencies = sorted(x for p in parts for x in p.latencies_ms)
    total = sum(p.requests for p in parts)
    # Requests are counted inside each client's measuring window only (start-up excluded).
    return Measurement(
        label,
        total,
        sum(p.errors for p in parts),
        total / DURATION_S,
        statistics.median(latencies),
        latencies[max(0, int(len(latencies) * 0.99) - 1)],
    )


def _start_server(extra_args: list[str]) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    command = [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", "0", "--quiet"]
    command += extra_args
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if match is None:
        server.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return server, int(match.group(1))


def _seed(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for workspace in WORKSPACES:
        _post(conn, f"/{workspace}/api/2.0/secrets/scopes/create", {"scope": SCOPE})
        for key in ("pip-index-url", "pip-extra-index-urls", "pip-cert"):
            body = {"scope": SCOPE, "key": key, "string_value": "https://idx.example/simple"}
            _post(conn, f"/{workspace}/api/2.0/secrets/put", body)
        for principal, permission in (("admins", "MANAGE"), ("users", "READ")):
            body = {"scope": SCOPE, "principal": principal, "permission": permission}
            _post(conn, f"/{workspace}/api/2.0/secrets/acls/put", body)
    conn.close()


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, str]) -> None:
    conn.request("POST", path, body=json.dumps(body), headers=HEADERS)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"seeding {path} answered {response.status}")


def _client_process(port: int, index: int, duration: float) -> Result:
    results: list[Result] = []
    lock = threading.Lock()
    start_at = time.perf_counter() + 0.3  # every thread starts together
    threads = [
        threading.Thread(
            target=_client_thread,
            args=(port, index * THREADS_PER_PROCESS + t, start_at, duration, results, lock),
        )
        for t in range(THREADS_PER_PROCESS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        [x for r in results for x in r.latencies_ms],
    )


def _client_thread(
    port: int,
    number: int,
    start_at: float,
    duration: float,
    results: list[Result],
    lock: threading.Lock,
) -> None:
    workspace = WORKSPACES[number % len(WORKSPACES)]
    base = f"/{workspace}/api/2.0/secrets"
    put_body = json.dumps(
        {"scope": SCOPE, "key": f"bench-{number}", "string_value": "https://idx.example/simple"}
    )
    plan = [("GET", f"{base}/list?scope={SCOPE}", None)] * 9
    plan += [("GET", f"{base}/acls/list?scope={SCOPE}", None)] * 7
    plan += [("POST", f"{base}/put", put_body)] * 4
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors = 0
    time.sleep(max(0.0, start_at - time.perf_counter()))
    end = time.perf_counter() + duration
    i = number
    while True:
        method, path, body = plan[i % len(plan)]
        i += 7  # interleave the mix
        sent = time.perf_counter()
        if sent >= end:
            break
        conn.request(method, path, body=body, headers=HEADERS)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - sent) * 1000)
        errors += response.status != 200
    conn.close()
    with lock:
        results.append(Result(len(latencies), errors, latencies))


if __name__ == "__main__":
    print(run())
