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

from reconciler.render._common import clean
from reconciler.render.drift.junit import safe
from reconciler.verify import CombinationResult, Outcome, Report, TlsFacts, UrlVerdict

FORMAT_VERSION = "1"
DOCUMENT_KIND = "pkgrepo-verify"
SCHEMA = "urn:pkgrepo:schema:verify:1"
_MAX_NAMES = 5


def _names(workspaces: tuple[str, ...]) -> str:
    shown = ", ".join(clean(w) for w in workspaces[:_MAX_NAMES])
    more = len(workspaces) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


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
    return f"verify: {report.probes} combination(s) probed, {ok} ok, {failed} failed" + (
        f" ({len(report.failed_workspaces())} workspace(s) affected)" if failed else ""
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
                f"    {url.outcome.value:7} {url.role} {clean(url.url)}: {clean(url.reason)}"
            )
            if url.tls is not None and (url.tls.subject or not url.tls.verified):
                lines.append(f"            {_tls_line(url.tls)}")
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


def _url_document(url: UrlVerdict) -> dict[str, Any]:
    return {
        "role": url.role,
        "url": url.url,
        "outcome": url.outcome.value,
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
        "urls": [_url_document(u) for u in res.urls],
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
    icon = {Outcome.OK: "✅ ok", Outcome.FAILED: "❌ failed", Outcome.SKIPPED: "⏭️ skipped"}
    lines += [
        "| # | result | index | URL | reason | workspaces | ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in report.results:
        for url in res.urls:
            lines.append(
                f"| {res.combination} | {icon[url.outcome]} | {_cell(url.role)} | "
                f"`{_cell(url.url)}` | {_cell(url.reason)} | {_cell(_names(res.workspaces))} | "
                f"{url.elapsed_ms} |"
            )
    lines += ["", summary(report)]
    return "\n".join(lines) + "\n"


def junit_suite(report: Report) -> ET.Element:
    """The report as one JUnit ``<testsuite>``: a test case per URL of each combination, a
    failure for each URL that does not answer. Shared with ``plan --format junit``."""
    failed = sum(1 for r in report.results for u in r.urls if u.outcome is Outcome.FAILED)
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
            if url.outcome is Outcome.FAILED:
                failure = ET.SubElement(
                    case, "failure", {"type": url.check or "verify", "message": safe(url.reason)}
                )
                failure.text = safe(f"workspaces: {_names(res.workspaces)}")
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


class Renderer(Protocol):
    def __call__(self, report: Report, *, color: bool = False) -> str: ...


RENDERERS: Mapping[str, Renderer] = {
    "text": text,
    "json": json_text,
    "markdown": markdown,
    "junit": junit,
}
FORMATS = tuple(RENDERERS)


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)
