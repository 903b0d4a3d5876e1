"""The drift report as a stable JSON document, for dashboards and bots.

Described by ``schemas/drift.schema.json`` (format version 1): fixed key order, ``indent=2``,
a final newline, every drift kind present in ``summary.by_kind`` (zero included) so a
consumer never meets a missing key. It holds only the planner's redacted texts.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.core.drift import DriftItem, DriftReport, WorkspaceDrift

FORMAT_VERSION = "2"
"""2: items say ``live``/``desired`` (as every format does), who a difference is attributed
to and how to settle it; ``fail_on`` and ``failing`` say what fails the job."""
DOCUMENT_KIND = "pkgrepo-drift"


def render(report: DriftReport, *, color: bool = False) -> str:
    """The document as text. ``color`` is accepted for a uniform signature and ignored."""
    del color
    return json.dumps(to_document(report), indent=2) + "\n"


def to_document(report: DriftReport) -> dict[str, Any]:
    counts = report.counts()
    return {
        "format_version": FORMAT_VERSION,
        "kind": DOCUMENT_KIND,
        "has_drift": report.has_drift,
        "has_errors": report.has_errors,
        "fail_on": report.fail_on.value,
        "failing": report.failing,
        "exit_code": report.exit_code,
        "summary": {
            "workspaces": counts.workspaces,
            "in_sync": counts.in_sync,
            "drifted": counts.drifted,
            "unreadable": counts.unreadable,
            "items": counts.items,
            "high": counts.high,
            "low": counts.low,
            "by_kind": {kind.value: n for kind, n in counts.by_kind.items()},
        },
        "workspaces": [_workspace(ws) for ws in report.workspaces],
        "orphaned": list(report.orphaned),
    }


def _workspace(ws: WorkspaceDrift) -> dict[str, Any]:
    return {
        "workspace": ws.workspace,
        "host": ws.host,
        "status": ws.status,
        "error": ws.error,
        "warnings": list(ws.warnings),
        "items": [_item(item) for item in ws.items],
    }


def _item(item: DriftItem) -> dict[str, Any]:
    return {
        "address": item.address,
        "kind": item.kind.value,
        "severity": item.severity.value,
        "action": item.action.value,
        "message": item.message,
        "attributed_to": item.attributed_to,
        "live": item.live,
        "desired": item.desired,
        "settle": {"apply": item.settle_apply, "git": item.settle_git},
    }
