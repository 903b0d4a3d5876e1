"""The pkgrepo demo: a full round trip against the local emulator (no Databricks account).

Started by `make demo`. It starts the emulator on 127.0.0.1:8020 and a real private package
index on 127.0.0.1:8021 (pypiserver behind TLS with a CA made for the demo, asking for basic
auth, serving one small wheel), then runs what a platform team runs in CI: validate, verify
the index, plan to a file, apply that plan, plan again (no changes). Then the index token is
rotated: a mistyped new token fails verify and the apply refuses it; the right one goes
through. Finally a secret is changed behind pkgrepo's back, and the next plan and the drift
report catch it. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from databricks.sdk import WorkspaceClient

from reconciler.emulator.private_index import make_ca, running_index

ROOT = Path(__file__).resolve().parent.parent
DESIRED = ROOT / "examples" / "demo.yaml"
PORT = int(os.environ.get("PKGREPO_DEMO_PORT", "8020"))
INDEX_PORT = int(os.environ.get("PKGREPO_DEMO_INDEX_PORT", "8021"))
ADMIN_TOKEN = "dapi-emulator-admin"

# Demo-only values for the environment variables examples/demo.yaml refers to.
DEMO_ENV = {
    "DATABRICKS_TOKEN": ADMIN_TOKEN,
    "PKGREPO_LEDGER_KEY": "demo-ledger-key-not-for-production",
    "ARTIFACTORY_USER": "ci-bot",
    "ARTIFACTORY_TOKEN": "demo-token-5f2c9a",
}
ROTATED_TOKEN = "demo-token-rotated-81d0"
MISTYPED_TOKEN = "demo-token-rotatd-81d0"


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


def local_copy() -> Path:
    """examples/demo.yaml, with other ports when PKGREPO_DEMO_PORT / _INDEX_PORT ask."""
    if PORT == 8020 and INDEX_PORT == 8021:
        return DESIRED
    text = DESIRED.read_text().replace("127.0.0.1:8020", f"127.0.0.1:{PORT}")
    text = text.replace("127.0.0.1:8021", f"127.0.0.1:{INDEX_PORT}")
    copy = Path(tempfile.mkdtemp(prefix="pkgrepo-demo-")) / "demo.yaml"
    copy.write_text(text)
    return copy


def start_index(stack: ExitStack, ca: object, token: str, root: Path) -> None:
    try:
        stack.enter_context(running_index(root, password=token, port=INDEX_PORT, ca=ca))
    except OSError as exc:
        raise SystemExit(
            f"demo failed: cannot serve the private index on 127.0.0.1:{INDEX_PORT} "
            f"({exc.strerror}); set PKGREPO_DEMO_INDEX_PORT to another port"
        ) from None


def main() -> int:
    env = {**os.environ, **DEMO_ENV}
    env.pop("PKGREPO_SKIP_VERIFY", None)
    desired = local_copy()
    out = Path(tempfile.mkdtemp(prefix="pkgrepo-demo-out-"))
    plan_file = out / "plan.json"
    banner(f"Starting the emulator on 127.0.0.1:{PORT}")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", str(PORT), "--quiet"],
        env=env,
    )
    ca = make_ca()
    env["DEMO_INDEX_CA"] = ca.cert_pem.bytes().decode()
    try:
        wait_for_port(PORT, emulator)
        with ExitStack() as index:
            banner(
                f"Starting a private package index on https://127.0.0.1:{INDEX_PORT}/simple/ "
                "(pypiserver, TLS with the demo CA, basic auth, one wheel)"
            )
            start_index(index, ca, DEMO_ENV["ARTIFACTORY_TOKEN"], out / "index")
            banner("1. Validate the desired state (no network needed)")
            pkgrepo("validate", str(desired), env=env)
            banner("2. Verify the package index: TLS against pip-cert, credentials, simple API")
            pkgrepo("verify", str(desired), env=env)
            banner("3. Plan against the live workspaces and save the plan")
            pkgrepo("plan", str(desired), "--out", str(plan_file), env=env)
            banner("4. Apply the reviewed plan")
            pkgrepo("apply", str(plan_file), env=env)
            banner("5. Plan again: nothing left to change")
            pkgrepo("plan", str(desired), "--detailed-exitcode", "--quiet", env=env)
        with ExitStack() as index:
            banner("6. The index team rotates the token; CI gets a mistyped new one")
            start_index(index, ca, ROTATED_TOKEN, out / "index-rotated")
            mistyped = {**env, "ARTIFACTORY_TOKEN": MISTYPED_TOKEN}
            pkgrepo("verify", str(desired), env=mistyped, expect=(1,))
            banner("7. The apply refuses to roll out an index that refuses its credentials")
            pkgrepo("apply", str(desired), "--auto-approve", "--quiet", env=mistyped, expect=(1,))
            banner("8. The fix: the right token verifies and rolls out")
            fixed = {**env, "ARTIFACTORY_TOKEN": ROTATED_TOKEN}
            pkgrepo("apply", str(desired), "--auto-approve", "--quiet", env=fixed)
            banner("9. Someone edits pip-index-url by hand, outside pkgrepo")
            client = WorkspaceClient(host=f"http://127.0.0.1:{PORT}/dev", token=ADMIN_TOKEN)
            client.secrets.put_secret(
                "databricks-package-management",
                "pip-index-url",
                string_value="https://mirror.attacker.example/simple",
            )
            print("put-secret databricks-package-management pip-index-url (by hand)")
            banner("10. The next plan catches it, though the value cannot be read back")
            pkgrepo("plan", str(desired), "--detailed-exitcode", "--quiet", env=fixed, expect=(2,))
            banner("11. The nightly drift job reports it too (exit 2: drift found)")
            pkgrepo("drift", str(desired), "--quiet", env=fixed, expect=(2,))
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
