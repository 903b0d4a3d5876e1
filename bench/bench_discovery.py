"""A discovered fleet at account scale: 1,000 and 5,000 workspaces listed by an emulated
account and reached with one OAuth service principal, against the round-trip lower bound.

The emulator runs as a subprocess (its own interpreter and GIL) with an account of N
generated RUNNING workspaces, one service principal (account admin, ADMIN in every
workspace) and 25 ms of latency on every workspace request, token requests included; it
logs each request, and the counts below are the emulator's. Each run is ``pkgrepo``'s own
code path (``open_session`` → discovery through ``AccountClient`` → ``Fleet`` →
``SdkWorkspace`` → databricks-sdk) in a process of its own (``bench.fleet_child``), so its
CPU time and peak memory are its own. Phases: (a) apply from empty, (b) plan of the
converged fleet, at each size.

Lower bound = workspaces x round trips on one workspace's critical path x latency /
parallelism. A converged workspace takes two round trips: its token (``POST
/oidc/v1/token``), then its three reads, which go out together (``secrets/list``,
``secrets/acls/list``, ``workspace/export`` of the ledger). Its values are not read back:
the apply sealed them in the ledger once their second had ended, and the stamps have not
moved since (a key whose stamp moved is read back, and what backs the scope is asked).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.bench_fleet import ROOT, EmulatorProcess, _clean_env
from reconciler.core.model import AuthSpec, SecretValue, WorkspaceSpec
from reconciler.edges.adapter import SdkWorkspace

SIZES = tuple(int(s) for s in os.environ.get("PKGREPO_BENCH_SIZES", "1000,5000").split(","))
LATENCY_MS = 25
PARALLELISM = 32
TARGET_BOUND_RATIO = 5.0
TARGET_CPU_MS = 2.5
TARGET_RSS_MIB = 1024
ACCOUNT_ID = "0d1e7a4b-0000-4000-8000-00000000be11"
CLIENT_ID = "9f0c2d4e-bench-fleet-deployer"
CLIENT_SECRET = "bench-fleet-oauth-secret-0123456789"
LEDGER_KEY = "bench-discovery-ledger-key-0123456789abcdef"
TIMEOUT_SECONDS = 1800


def emulator_config(count: int) -> str:
    return f"""\
workspace_defaults:
  faults: {{latency_ms: {LATENCY_MS}}}
account:
  account_id: {ACCOUNT_ID}
  service_principals:
    - application_id: {CLIENT_ID}
      secrets: [{CLIENT_SECRET}]
      account_admin: true
      admin_in: ["*"]
  generate: {{count: {count}, prefix: ws-}}
"""


def desired_yaml(url: str) -> str:
    return f"""\
version: 1
safety: {{max_update_share: 1.0, max_delete_workspaces: 1}}
defaults:
  repositories:
    index_url: https://pypi.corp.example/api/pypi/pypi-remote/simple
    extra_index_urls: [https://download.pytorch.org/whl/cpu]
  acls: {{admins: MANAGE, users: READ}}
discover:
  account:
    host: {url}
    account_id: {ACCOUNT_ID}
    auth:
      client_id: {{env: DATABRICKS_CLIENT_ID}}
      client_secret: {{env: DATABRICKS_CLIENT_SECRET}}
  host: "{url}/{{deployment_name}}"
  include:
    - labels: {{region: "{{region}}"}}
"""


@dataclass(frozen=True)
class Run:
    size: int
    label: str
    wall: float
    cpu: float
    discovery: float
    max_rss_mib: float
    emulator_cpu: float
    results: dict[str, int]
    counts: Counter[str]
    load: tuple[float, float] = (0.0, 0.0)
    """1-minute load average when the run started and when it ended."""

    def per_ws(self, endpoint: str) -> float:
        return self.counts.get(endpoint, 0) / self.size

    @property
    def api_requests(self) -> int:
        return sum(
            n for ep, n in self.counts.items() if "/api/2.0/" in ep and "/accounts/" not in ep
        )

    @property
    def token_requests(self) -> int:
        return self.counts.get("POST /oidc/v1/token", 0)

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def round_trips(self) -> float:
        """Per workspace: its token, then its reads (``acls/list`` marks one round of three
        concurrent GETs: ``secrets/list``, ``acls/list``, ``workspace/export``), then every
        other request one after another, but that ``scopes/list`` travels with the first
        ``secrets/get`` where both are asked."""
        reads = self.counts.get("GET /api/2.0/secrets/acls/list", 0)
        together = min(
            self.counts.get("GET /api/2.0/secrets/scopes/list", 0),
            self.counts.get("GET /api/2.0/secrets/get", 0),
        )
        sequential = self.api_requests - 2 * reads - together
        return (self.token_requests + sequential) / self.size

    @property
    def lower_bound(self) -> float:
        return self.size * self.round_trips * LATENCY_MS / 1000 / PARALLELISM


def _counts(emu: EmulatorProcess, before: Counter[tuple[str, str, str]]) -> Counter[str]:
    by: Counter[str] = Counter()
    for (ws, endpoint, _status), n in (emu.snapshot() - before).items():
        if ws in ("api", "oidc"):  # the account host's paths: no workspace prefix
            method, _, path = endpoint.partition(" ")
            endpoint = f"{method} /{ws}{path}".replace(ACCOUNT_ID, "<account>")
        by[endpoint] += n
    return by


def _run(size: int, label: str, emu: EmulatorProcess, desired: Path, mode: str) -> Run:
    load_before = os.getloadavg()[0]
    before, emu_before = emu.snapshot(), emu.cpu_seconds()
    env = _clean_env() | {
        "DATABRICKS_CLIENT_ID": CLIENT_ID,
        "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET,
        "PKGREPO_LEDGER_KEY": LEDGER_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.fleet_child", str(desired), mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{label}: exit {done.returncode}: {done.stdout[-300:]} {done.stderr[-500:]}"
        )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(
        size=size,
        label=label,
        wall=got["wall"],
        cpu=got["cpu"],
        discovery=got["discovery"],
        max_rss_mib=got["max_rss_kib"] / 1024,
        emulator_cpu=emu.cpu_seconds() - emu_before,
        results=got["results"],
        counts=_counts(emu, before),
        load=(load_before, os.getloadavg()[0]),
    )


@contextlib.contextmanager
def _account(folder: Path, size: int) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(folder, config_text=emulator_config(size))
    try:
        yield process
    finally:
        process.stop()


FLOOR_REQUESTS = 200


def request_cpu(emu: EmulatorProcess) -> float:
    """Client CPU seconds of one SDK request on a kept-alive connection, one thread, after
    the client exists and holds its token: the least any request of a plan can cost here.
    Measured with this thread's own CPU clock (the emulator's log reader runs beside it)."""
    spec = WorkspaceSpec(
        name="floor",
        host=f"{emu.url}/ws-0000",
        auth=AuthSpec(kind="oauth", client_id=CLIENT_ID, client_secret=SecretValue(CLIENT_SECRET)),
    )
    port = SdkWorkspace.connect(spec)
    try:
        for _ in range(20):
            port.list_acls()
        best = float("inf")
        for _ in range(3):
            started = time.thread_time()
            for _ in range(FLOOR_REQUESTS):
                port.list_acls()
            best = min(best, (time.thread_time() - started) / FLOOR_REQUESTS)
        return best
    finally:
        port.close()


def measure() -> tuple[list[Run], tuple[float, float, float], float]:
    load = os.getloadavg()
    runs: list[Run] = []
    floor = 0.0
    for size in SIZES:
        with tempfile.TemporaryDirectory() as name, _account(Path(name), size) as emu:
            desired = Path(name) / "fleet.yaml"
            desired.write_text(desired_yaml(emu.url))
            print(f"  {size}: apply from empty ...", file=sys.stderr, flush=True)
            runs.append(_run(size, "(a) apply from empty", emu, desired, "apply"))
            print(f"  {size}: converged plan ...", file=sys.stderr, flush=True)
            runs.append(_run(size, "(b) plan, converged", emu, desired, "plan"))
            if size == max(SIZES):
                print("  one SDK request, client CPU ...", file=sys.stderr, flush=True)
                floor = request_cpu(emu)
    return runs, load, floor


def run() -> str:
    runs, load, floor = measure()
    plans = [r for r in runs if r.label.startswith("(b)")]
    big = max(plans, key=lambda r: r.size)
    ratio = big.wall / big.lower_bound
    cpu_ms = big.cpu * 1000 / big.size
    floor_ms = floor * 1000
    per_ws_requests = big.requests / big.size

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    lines = [
        "## Discovered fleet (account scale)",
        "",
        "An emulated account of N generated RUNNING workspaces, discovered by `discover:` "
        "through databricks-sdk's `AccountClient` and reached with one OAuth "
        "machine-to-machine service principal (a token per workspace from its own token "
        f"endpoint), on one `pkgrepo emulator serve` subprocess with `latency_ms: {LATENCY_MS}` "
        f"on every workspace request, tokens included; parallelism {PARALLELISM}. Each run is "
        "a fresh process (new clients, new tokens), as a CI job is; requests are counted "
        "from the emulator's log. Lower bound = workspaces x round trips x latency / "
        f"parallelism. Load average when the run started: {load[0]:.1f} (this 2-core machine "
        "is shared).",
        "",
        f"Targets at {big.size:,} (converged plan): wall within {TARGET_BOUND_RATIO:.0f}x of "
        f"the bound — **{verdict(ratio <= TARGET_BOUND_RATIO)}** ({ratio:.1f}x); client CPU "
        f"at most {TARGET_CPU_MS} ms per workspace — **{verdict(cpu_ms <= TARGET_CPU_MS)}** "
        f"({cpu_ms:.2f} ms); peak memory under 1 GiB — "
        f"**{verdict(big.max_rss_mib < TARGET_RSS_MIB)}** ({big.max_rss_mib:.0f} MiB).",
        "",
        f"The floor under client CPU: one SDK request on a kept-alive connection, one thread, "
        f"the same {LATENCY_MS} ms latency, costs {floor_ms:.2f} ms of client CPU on this "
        "machine (best of three "
        f"rounds of {FLOOR_REQUESTS}; `requests`, `urllib3` and `http.client` are nearly all "
        f"of it). A converged workspace makes {per_ws_requests:.2f} requests (its token and "
        f"three reads), so no databricks-sdk client can plan it for less than "
        f"{per_ws_requests * floor_ms:.2f} ms here, before opening its connections, building "
        "its client and planning.",
        "",
        "| workspaces | phase | wall | lower bound | wall / bound | round trips / ws "
        "| requests / ws | token requests / ws | client CPU / ws | emulator CPU / ws "
        "| peak RSS (client) | discovery | results | load average (start / end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        results = ", ".join(f"{n} {s}" for s, n in sorted(r.results.items()))
        lines.append(
            f"| {r.size:,} | {r.label} | {r.wall:.1f} s | {r.lower_bound:.1f} s "
            f"| {r.wall / r.lower_bound:.1f}x | {r.round_trips:.2f} | {r.requests / r.size:.2f} "
            f"| {r.token_requests / r.size:.2f} | {r.cpu * 1000 / r.size:.2f} ms "
            f"| {r.emulator_cpu * 1000 / r.size:.2f} ms | {r.max_rss_mib:.0f} MiB "
            f"| {r.discovery:.2f} s | {results} | {r.load[0]:.1f} / {r.load[1]:.1f} |"
        )
    lines += ["", "Requests per workspace, by endpoint, at the larger size:", ""]
    apply_big = next(r for r in runs if r.size == big.size and r.label.startswith("(a)"))
    lines += ["| endpoint | (a) apply from empty | (b) plan, converged |", "|---|---|---|"]
    endpoints = sorted(
        set(apply_big.counts) | set(big.counts), key=lambda e: -apply_big.counts.get(e, 0)
    )
    for endpoint in endpoints:
        lines.append(
            f"| `{endpoint}` | {apply_big.per_ws(endpoint):.3f} | {big.per_ws(endpoint):.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
