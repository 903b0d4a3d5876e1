"""The verify report in four formats: text for people, JSON for bots (``kind`` and
``format_version`` name its schema, ``schemas/verify.schema.json``), Markdown for a
pull-request comment, JUnit XML for CI.

Pure. Everything shown comes from the report, which holds masked URLs and certificate
descriptions only; each line still goes through ``clean`` so an index cannot write control
characters to the terminal through a certificate subject.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, Protocol

from reconciler.core.verify import CombinationResult, Outcome, Report, TlsFacts, UrlVerdict, Waiver
from reconciler.render._common import clean
from reconciler.render.drift.junit import safe
from reconciler.render.markdown import escape

FORMAT_VERSION = "2"
DOCUMENT_KIND = "pkgrepo-verify"
SCHEMA = "urn:pkgrepo:schema:verify:1"
_MAX_NAMES = 5


def _names(workspaces: tuple[str, ...]) -> str:
    shown = ", ".join(clean(w) for w in workspaces[:_MAX_NAMES])
    more = len(workspaces) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def waiver_lines(waivers: tuple[Waiver, ...]) -> list[str]:
    """``waived cert-validates-index for dev, prod: REASON``: one line per (check, reason),
    naming the workspaces that waive it. Display-safe."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for waiver in waivers:
        grouped.setdefault((waiver.check, waiver.reason), []).append(waiver.workspace)
    return [
        clean(f"waived {check} for {_names(tuple(names))}: {reason}")
        for (check, reason), names in grouped.items()
    ]


def _tls_line(tls: TlsFacts) -> str:
    parts = [f"subject {tls.subject or '?'}", f"issuer {tls.issuer or '?'}"]
    if tls.not_after is not None:
        parts.append(f"expires {tls.not_after:%Y-%m-%d}")
    state = "valid" if tls.verified else f"NOT valid: {tls.error}"
    return clean(f"certificate: {', '.join(parts)}; {state} against the {tls.trust}")


def summary(report: Report) -> str:
    if report.skipped:
        return f"verify skipped: {report.skipped}"
    failed = len(report.failed)
    ok = sum(r.outcome is Outcome.OK for r in report.results)
    waived = sum(r.outcome is Outcome.WAIVED for r in report.results)
    return (
        f"verify: {report.probes} combination(s) probed, {ok} ok, {failed} failed"
        + (f", {waived} waived" if waived else "")
        + (f" ({len(report.failed_workspaces())} workspace(s) affected)" if failed else "")
    )


def text(report: Report, *, color: bool = False) -> str:
    del color
    lines = ["Package index verification:"]
    for res in report.results:
        lines.append(
            f"  [{res.outcome.value}] #{res.combination} {clean(res.shown)}"
            f"  ({len(res.workspaces)} workspace(s): {_names(res.workspaces)}; {res.elapsed_ms} ms)"
        )
        for url in res.urls:
            lines.append(
                f"    {res.url_outcome(url).value:7} {url.role} {clean(url.url)}: "
                f"{clean(url.reason)}"
            )
            if url.tls is not None and (url.tls.subject or not url.tls.verified):
                lines.append(f"            {_tls_line(url.tls)}")
        lines.extend(f"    {line}" for line in waiver_lines(res.waived()))
    lines.extend(f"  note: {clean(n)}" for n in report.notes)
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def _tls_document(tls: TlsFacts | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "trust": tls.trust,
        "valid": tls.verified,
        "error": tls.error,
        "subject": tls.subject,
        "issuer": tls.issuer,
        "not_after": tls.not_after.isoformat() if tls.not_after else None,
    }


def _url_document(res: CombinationResult, url: UrlVerdict) -> dict[str, Any]:
    return {
        "role": url.role,
        "url": url.url,
        "outcome": res.url_outcome(url).value,
        "reason": url.reason,
        "check": url.check,
        "elapsed_ms": url.elapsed_ms,
        "tls": _tls_document(url.tls),
    }


def _result_document(res: CombinationResult) -> dict[str, Any]:
    return {
        "combination": res.combination,
        "shown": res.shown,
        "outcome": res.outcome.value,
        "workspaces": list(res.workspaces),
        "elapsed_ms": res.elapsed_ms,
        "urls": [_url_document(res, u) for u in res.urls],
        "waived": [
            {"workspace": w.workspace, "check": w.check, "reason": w.reason} for w in res.waived()
        ],
    }


def to_document(report: Report) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "format_version": FORMAT_VERSION,
        "kind": DOCUMENT_KIND,
        "ok": report.ok,
        "skipped": report.skipped,
        "probes": report.probes,
        "failed_workspaces": list(report.failed_workspaces()),
        "results": [_result_document(r) for r in report.results],
    }


def json_text(report: Report, *, color: bool = False) -> str:
    del color
    return json.dumps(to_document(report), indent=2) + "\n"


def _cell(text_: str) -> str:
    return clean(text_).replace("|", "\\|").replace("`", "'")


def markdown(report: Report, *, color: bool = False) -> str:
    del color
    lines = ["### Package index verification", ""]
    if report.skipped:
        lines += [f"> **Skipped:** {_cell(report.skipped)}", ""]
        return "\n".join(lines) + "\n"
    icon = {
        Outcome.OK: "✅ ok",
        Outcome.FAILED: "❌ failed",
        Outcome.SKIPPED: "⏭️ skipped",
        Outcome.WAIVED: "⚠️ waived",
    }
    lines += [
        "| # | result | index | URL | reason | workspaces | ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in report.results:
        for url in res.urls:
            lines.append(
                f"| {res.combination} | {icon[res.url_outcome(url)]} | {_cell(url.role)} | "
                f"`{_cell(url.url)}` | {_cell(url.reason)} | {_cell(_names(res.workspaces))} | "
                f"{url.elapsed_ms} |"
            )
    waived = [line for res in report.results for line in waiver_lines(res.waived())]
    if waived:
        lines += ["", *(f"> **{escape(line)}**" for line in waived)]
    lines += ["", summary(report)]
    return "\n".join(lines) + "\n"


def junit_suite(report: Report) -> ET.Element:
    """The report as one JUnit ``<testsuite>``: a test case per URL of each combination, a
    failure for each URL that does not answer. Shared with ``plan --format junit``."""
    failed = sum(1 for r in report.results for u in r.urls if r.url_outcome(u) is Outcome.FAILED)
    cases = sum(len(r.urls) for r in report.results)
    totals = {"tests": str(cases), "failures": str(failed), "errors": "0", "skipped": "0"}
    suite = ET.Element("testsuite", {"name": "pkgrepo verify", **totals})
    for res in report.results:
        for url in res.urls:
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": "pkgrepo.verify",
                    "name": safe(f"#{res.combination} {url.role} {url.url}"),
                    "time": f"{url.elapsed_ms / 1000:.3f}",
                },
            )
            waived = waiver_lines(tuple(w for w in res.waived() if w.check == url.check))
            outcome = res.url_outcome(url)
            if outcome is Outcome.FAILED:
                failing = tuple(
                    ws for ws, urls in res.failures_by_workspace().items() if url in urls
                )
                failure = ET.SubElement(
                    case, "failure", {"type": url.check or "verify", "message": safe(url.reason)}
                )
                failure.text = "\n".join(
                    [safe(f"workspaces: {_names(failing)}"), *(safe(w) for w in waived)]
                )
            elif outcome is Outcome.WAIVED:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join([safe(f"failed: {url.reason}"), *(safe(w) for w in waived)])
    if report.skipped:
        out = ET.SubElement(suite, "system-out")
        out.text = safe(f"verify skipped: {report.skipped}")
    return suite


def junit(report: Report, *, color: bool = False) -> str:
    del color
    suite = junit_suite(report)
    root = ET.Element("testsuites", {"name": "pkgrepo verify"})
    for name in ("tests", "failures", "errors", "skipped"):
        root.set(name, suite.get(name, "0"))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class VerifyRenderer(Protocol):
    def __call__(self, report: Report, *, color: bool = False) -> str: ...


RENDERERS: Mapping[str, VerifyRenderer] = {
    "text": text,
    "json": json_text,
    "markdown": markdown,
    "junit": junit,
}
FORMATS = tuple(RENDERERS)


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)
