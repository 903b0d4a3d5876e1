"""What every command that talks to workspaces sets up: the desired state, the selection,
the ledger, and the fleet that runs them. Shared click options live here too, so ``plan``,
``apply`` and ``drift`` take the same flags with the same help."""

from __future__ import annotations

import datetime as dt
import functools
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import config
from reconciler.commands.selection import Selection, from_flags, select, selection_options, shard_of
from reconciler.core import discovery, policy
from reconciler.core.discovery import AccountWorkspace, DiscoveryReport
from reconciler.core.errors import ConfigError, UserError
from reconciler.core.model import DesiredState, SecretValue, WorkspaceSpec
from reconciler.edges import fleet_record
from reconciler.edges.adapter import DEFAULT_TIMEOUT_SECONDS, SdkWorkspace, list_account_workspaces
from reconciler.edges.ledger_store import LedgerStore, LocalLedgerStore, WorkspaceLedgerStore
from reconciler.edges.throttle import HostRates
from reconciler.engine.fleet import DEFAULT_PARALLELISM, Fleet
from reconciler.engine.lock import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_WAIT_SECONDS,
    MAX_LEASE_SECONDS,
    MIN_LEASE_SECONDS,
)
from reconciler.engine.port import WorkspacePort
from reconciler.render.discovery import discovery_lines
from reconciler.terminal import output

F = TypeVar("F", bound=Callable[..., Any])

LEDGER_KEY_ENV = "PKGREPO_LEDGER_KEY"
PREVIOUS_LEDGER_KEY_ENV = "PKGREPO_LEDGER_KEY_PREVIOUS"
"""During a key rotation: the old key, still accepted for ledgers signed with it (apply
signs them again with the new one)."""
LEASE_ENV = "PKGREPO_LOCK_LEASE_SECONDS"
"""The lease ``apply`` holds its locks on (default 60 s). Shorter frees a dead run's
workspaces sooner and needs a faster workspace to renew in time."""
LOCK_WAIT_ENV = "PKGREPO_LOCK_WAIT_SECONDS"
"""How long ``apply`` waits for a lock another run holds and keeps renewing (default 90 s);
a holder that stopped renewing is always waited out, whatever this is."""
MAX_LOCK_WAIT_SECONDS = 3600


def run_options(fn: F) -> F:
    """``--parallelism``, ``--rate-limit``, ``--ledger``, ``--fleet-record``: how to reach
    the workspaces, and where what pkgrepo manages is remembered."""
    fn = click.option(
        "--fleet-record",
        "record",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help="Remember in FILE which workspaces apply has brought under management (names "
        "only), so a later plan or drift names one that the file and the account's "
        "discovery no longer list as orphaned. Keep it between runs.",
    )(fn)
    fn = click.option(
        "--ledger",
        "ledger_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Keep ledgers in this local directory instead of in each workspace.",
    )(fn)
    fn = click.option(
        "--timeout",
        type=click.IntRange(min=1, max=3600),
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default=True,
        metavar="SECONDS",
        help="How long one request to a workspace is retried (throttling, 503s, dropped "
        "connections) before that workspace fails.",
    )(fn)
    fn = click.option(
        "--rate-limit",
        type=click.FloatRange(min=0.1),
        default=None,
        metavar="RPS",
        help="At most RPS requests per second to any one workspace host.",
    )(fn)
    fn = click.option(
        "--parallelism",
        "-p",
        type=click.IntRange(min=1, max=512),
        default=DEFAULT_PARALLELISM,
        show_default=True,
        help="Workspaces worked on at the same time.",
    )(fn)
    return fn


@dataclass(frozen=True)
class CommandTarget:
    """Which workspaces a command acts on and how it reaches them (the shared flags)."""

    names: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    shard: str | None = None
    parallelism: int = DEFAULT_PARALLELISM
    rate_limit: float | None = None
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    ledger_dir: Path | None = None
    record: Path | None = None
    """``--fleet-record``: the file that remembers the managed workspaces."""


def fleet_options(fn: F) -> F:
    """The selection and run flags, handed to the command as one ``target: CommandTarget``."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        names: tuple[str, ...],
        labels: tuple[str, ...],
        shard: str | None,
        parallelism: int,
        rate_limit: float | None,
        timeout: int,
        ledger_dir: Path | None,
        record: Path | None,
        **kwargs: Any,
    ) -> Any:
        target = CommandTarget(
            names, labels, shard, parallelism, rate_limit, timeout, ledger_dir, record
        )
        return fn(*args, target=target, **kwargs)

    return selection_options(run_options(wrapper))  # type: ignore[return-value]


@dataclass
class Session:
    path: Path
    desired: DesiredState
    specs: list[WorkspaceSpec]
    fleet: Fleet
    hmac_key: SecretValue | None
    store: LedgerStore
    discovery: DiscoveryReport | None = None
    orphaned: tuple[str, ...] = ()
    """Workspaces the ledger store or the fleet record knows that the file (and discovery)
    no longer names."""
    record: Path | None = None


def load_desired(path: Path, *, warn_for: Callable[[str], bool] | None = None) -> DesiredState:
    """Load and validate the file, policy checks included (what ``validate`` reports is
    what stops a plan); every secret it resolves becomes unprintable. Schema and policy
    errors come together in one message; a finding repeated in many workspaces (written
    once in ``defaults``) is one line naming them. Warnings are printed for the workspaces
    ``warn_for`` accepts (the selection), each once."""
    desired, findings = load_checked(path)
    warn(path, findings, warn_for)
    return desired


def warn(
    path: Path, findings: tuple[policy.Finding, ...], only: Callable[[str], bool] | None
) -> None:
    """Print the warnings among ``findings`` for the workspaces ``only`` accepts, each
    finding once (grouped across the workspaces it affects)."""
    chosen = [
        f
        for f in findings
        if f.severity is policy.Level.WARNING and (only is None or only(f.workspace))
    ]
    for finding, names in policy.grouped(chosen):
        output.warning(policy.format_grouped(str(path), finding, names))


def load_checked(path: Path) -> tuple[DesiredState, tuple[policy.Finding, ...]]:
    """The desired state and its policy findings, or a ``ConfigError`` listing every
    schema, resolution and policy error of the file in the order they are written."""
    now = dt.datetime.now(dt.UTC)
    try:
        loaded = config.load(path)
    except config.InvalidConfig as exc:
        output.register_secrets(exc.secrets)
        located = [(p.line, p.column, str(p)) for p in exc.details]
        partial = exc.partial
        if partial is not None:
            output.register_secrets(partial.secrets)
            found = policy.evaluate(partial.desired, partial.provenance, now=now)
            located += _located_errors(path, found)
        raise ConfigError(
            [text for _, _, text in sorted(located, key=lambda item: item[:2])]
        ) from None
    output.register_secrets(loaded.secrets)
    findings = policy.evaluate(loaded.desired, loaded.provenance, now=now)
    if policy.has_errors(findings):
        raise ConfigError([text for _, _, text in _located_errors(path, findings)])
    return loaded.desired, findings


def _located_errors(path: Path, findings: tuple[policy.Finding, ...]) -> list[tuple[int, int, str]]:
    errors = [f for f in findings if f.severity is policy.Level.ERROR]
    return [
        (first.line or 1 << 30, first.column, policy.format_grouped(str(path), first, names))
        for first, names in policy.grouped(errors)
    ]


def ledger_key(name: str = LEDGER_KEY_ENV) -> SecretValue | None:
    value = os.environ.get(name)
    if not value:
        return None
    output.register_secrets([value])
    return SecretValue(value)


def previous_ledger_key() -> SecretValue | None:
    """``PKGREPO_LEDGER_KEY_PREVIOUS``; only meaningful beside ``PKGREPO_LEDGER_KEY``."""
    previous = ledger_key(PREVIOUS_LEDGER_KEY_ENV)
    if previous is not None and ledger_key() is None:
        raise UserError(
            f"{PREVIOUS_LEDGER_KEY_ENV} is set without {LEDGER_KEY_ENV}: a key rotation "
            f"needs the new key in {LEDGER_KEY_ENV} and the old one in {PREVIOUS_LEDGER_KEY_ENV}"
        )
    return previous


def lease_seconds() -> int:
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    if not text.isdigit() or not MIN_LEASE_SECONDS <= int(text) <= MAX_LEASE_SECONDS:
        raise UserError(
            f"{LEASE_ENV} must be a whole number of seconds from {MIN_LEASE_SECONDS} "
            f"to {MAX_LEASE_SECONDS}"
        )
    return int(text)


def lock_wait_seconds() -> float:
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WAIT_SECONDS
    if not text.isdigit() or int(text) > MAX_LOCK_WAIT_SECONDS:
        raise UserError(
            f"{LOCK_WAIT_ENV} must be a whole number of seconds from 0 to {MAX_LOCK_WAIT_SECONDS}"
        )
    return float(text)


def open_session(
    path: Path,
    target: CommandTarget = CommandTarget(),
    *,
    only: tuple[str, ...] | None = None,
) -> Session:
    """Load the file, select the workspaces and set up the fleet that will reach them.
    ``only`` names the exact workspaces to act on (a saved plan's), instead of the
    target's ``--workspace`` patterns."""
    loaded, findings = load_checked(path)
    desired, report, listed = discover(loaded, target)
    if only is not None:
        # Exactly these names (never patterns), and none at all when ``only`` is empty:
        # an empty saved plan applies nothing, not the whole fleet.
        specs = [spec for spec in desired.workspaces if spec.name in set(only)]
    else:
        selection = from_flags(target.names, target.labels, target.shard)
        specs = select(desired.workspaces, selection)
    chosen = {spec.name for spec in specs}
    warn(path, findings, chosen.__contains__)
    store: LedgerStore = (
        LocalLedgerStore(target.ledger_dir) if target.ledger_dir else WorkspaceLedgerStore()
    )
    key = ledger_key()
    previous = previous_ledger_key()
    in_workspace = store.in_workspace
    rates = HostRates(target.rate_limit) if target.rate_limit else None

    def connect(spec: WorkspaceSpec) -> WorkspacePort:
        return SdkWorkspace.connect(
            spec,
            ledger_in_workspace=in_workspace,
            retry_timeout_seconds=target.timeout,
            on_value=output.register_secret,
            throttle=rates.for_host(spec.host) if rates else None,
        )

    fleet = Fleet(
        connect,
        store,
        key,
        parallelism=target.parallelism,
        mask=output.scrub,
        previous_key=previous,
        lease_seconds=lease_seconds(),
        lock_wait_seconds=lock_wait_seconds(),
    )
    orphaned: tuple[str, ...] = ()
    if only is None:
        known = set(store.known())
        if target.record is not None:
            known |= set(fleet_record.read(target.record))
        orphaned = orphans(sorted(known), desired, selection)
        if report is not None:
            for line in discovery.orphan_reasons(loaded.discovery, report, listed, orphaned):
                output.warning(line)
    return Session(path, desired, specs, fleet, key, store, report, orphaned, target.record)


def orphans(known: Iterable[str], desired: DesiredState, selection: Selection) -> tuple[str, ...]:
    """Workspaces pkgrepo knows it managed (a ledger in the ledger directory, a name in the
    fleet record) that ``desired`` no longer names: managed once, now checked by nothing.
    Only for a selection of the whole file (a shard reports those that fall in it, so a CI
    matrix reports each once)."""
    if selection.names or selection.labels:
        return ()
    named = {spec.name for spec in desired.workspaces}
    found = [name for name in known if name not in named]
    if selection.shard is not None:
        index, count = selection.shard
        found = [name for name in found if shard_of(name, count) == index]
    return tuple(found)


def discover(
    desired: DesiredState, target: CommandTarget
) -> tuple[DesiredState, DiscoveryReport | None, Sequence[AccountWorkspace]]:
    """With ``discover:``, the account's workspaces added by the file's rules (one request
    to the account), the report of what was found and skipped (shown on stderr), and what
    the account listed."""
    if desired.discovery is None:
        return desired, None, ()
    listed = list_account_workspaces(
        desired.discovery.account, retry_timeout_seconds=target.timeout
    )
    expanded, report = discovery.expand(desired, listed)
    for line in discovery_lines(report):
        output.info(line)
    for name in report.missing:
        output.warning(
            f"{name}: declared in the file to extend a discovered workspace, but the account "
            "does not list it; not planned (nothing is deleted)"
        )
    return expanded, report, listed


def new_salt() -> str:
    return secrets.token_hex(16)
