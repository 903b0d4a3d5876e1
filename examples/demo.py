"""The pkgrepo demo: a full round trip against the local emulator (no Databricks account).

Started by `make demo`. It starts the emulator on 127.0.0.1:8020, then runs what a platform
team runs in CI: validate, plan to a file, apply that plan, plan again (no changes), and
finally changes a secret behind pkgrepo's back to show the next plan and the drift report
catching it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from databricks.sdk import WorkspaceClient

ROOT = Path(__file__).resolve().parent.parent
DESIRED = ROOT / "examples" / "demo.yaml"
PORT = int(os.environ.get("PKGREPO_DEMO_PORT", "8020"))
ADMIN_TOKEN = "dapi-emulator-admin"

# Demo-only values for the environment variables examples/demo.yaml refers to.
DEMO_ENV = {
    "DATABRICKS_TOKEN": ADMIN_TOKEN,
    "PKGREPO_LEDGER_KEY": "demo-ledger-key-not-for-production",
    "ARTIFACTORY_USER": "ci-bot",
    "ARTIFACTORY_TOKEN": "demo-token-5f2c9a",
}


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def pkgrepo(*args: str, env: dict[str, str], expect: tuple[int, ...] = (0,)) -> None:
    shown = " ".join(["pkgrepo", *args])
    print(f"$ {shown}", flush=True)
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, check=False)
    if done.returncode not in expect:
        raise SystemExit(f"demo failed: `{shown}` exited {done.returncode}, expected {expect}")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                "demo failed: the emulator exited at start (is port "
                f"{port} in use? set PKGREPO_DEMO_PORT to another port)"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"demo failed: the emulator did not listen on port {port}")


def main() -> int:
    env = {**os.environ, **DEMO_ENV}
    desired = DESIRED
    if PORT != 8020:  # the example file names port 8020; point it elsewhere on request
        text = DESIRED.read_text().replace("127.0.0.1:8020", f"127.0.0.1:{PORT}")
        copy = Path(tempfile.mkdtemp(prefix="pkgrepo-demo-")) / "demo.yaml"
        copy.write_text(text)
        for item in (DESIRED.parent / "certs").glob("*"):
            (copy.parent / "certs").mkdir(exist_ok=True)
            (copy.parent / "certs" / item.name).write_bytes(item.read_bytes())
        desired = copy
    out = Path(tempfile.mkdtemp(prefix="pkgrepo-demo-out-"))
    plan_file = out / "plan.json"
    banner(f"Starting the emulator on 127.0.0.1:{PORT}")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", str(PORT), "--quiet"],
        env=env,
    )
    try:
        wait_for_port(PORT, emulator)
        banner("1. Validate the desired state (no network needed)")
        pkgrepo("validate", str(desired), env=env)
        banner("2. Plan against the live workspaces and save the plan")
        pkgrepo("plan", str(desired), "--out", str(plan_file), env=env)
        banner("3. Apply the reviewed plan")
        pkgrepo("apply", str(plan_file), env=env)
        banner("4. Plan again: nothing left to change")
        pkgrepo("plan", str(desired), "--detailed-exitcode", "--quiet", env=env)
        banner("5. Someone edits pip-index-url by hand, outside pkgrepo")
        client = WorkspaceClient(host=f"http://127.0.0.1:{PORT}/dev", token=ADMIN_TOKEN)
        client.secrets.put_secret(
            "databricks-package-management",
            "pip-index-url",
            string_value="https://mirror.attacker.example/simple",
        )
        print("put-secret databricks-package-management pip-index-url (by hand)")
        banner("6. The next plan catches it, though the value cannot be read back")
        pkgrepo("plan", str(desired), "--detailed-exitcode", "--quiet", env=env, expect=(2,))
        banner("7. The nightly drift job reports it too (exit 2: drift found)")
        pkgrepo("drift", str(desired), "--quiet", env=env, expect=(2,))
        banner(DONE)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return 0


DONE = (
    "Done. pkgrepo is installed in .venv, which is not on your PATH: run "
    "`.venv/bin/pkgrepo --help` (or `. .venv/bin/activate`, then `pkgrepo --help`) "
    "to see every command."
)


if __name__ == "__main__":
    raise SystemExit(main())
